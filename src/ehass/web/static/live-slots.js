// Free times taken by someone else disappear while the page is open (server-sent events).
const week = document.querySelector("[data-live-doctor]");
const status = document.getElementById("live-status");

function announce(message) {
  if (status) {
    status.textContent = message;
  }
}

if (week && "EventSource" in window) {
  const doctorId = week.dataset.liveDoctor;
  const source = new EventSource(`/doctors/${encodeURIComponent(doctorId)}/live`);
  source.addEventListener("slots", (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    for (const start of change.taken || []) {
      const slot = week.querySelector(`[data-slot="${CSS.escape(start)}"]`);
      if (!slot) {
        continue;
      }
      const input = slot.querySelector("input");
      const label = slot.querySelector("label");
      const wasChosen = input && input.checked;
      const day = slot.closest("fieldset")?.querySelector("legend")?.textContent || "";
      slot.remove();
      announce(
        wasChosen
          ? `The time you chose, ${day} ${label ? label.textContent : ""}, was just taken. Please choose another.`
          : `${day} ${label ? label.textContent : ""} was just taken by someone else.`,
      );
    }
    if ((change.freed || []).length) {
      announce("A time has just become free: reload the page to see it.");
    }
  });
  window.addEventListener("pagehide", () => source.close());
}
