// Free times taken by someone else disappear while the page is open (server-sent events).
const week = document.querySelector("[data-live-doctor]");
const status = document.getElementById("live-status");

function announce(message) {
  if (status) {
    status.textContent = message;
  }
}

function describe(slot) {
  const day = slot.closest("fieldset")?.querySelector("legend")?.textContent || "";
  const label = slot.querySelector("label")?.textContent || "";
  return `${day} ${label}`.trim();
}

function removeSlot(start) {
  const slot = week.querySelector(`[data-slot="${CSS.escape(start)}"]`);
  if (!slot) {
    return;
  }
  const chosen = slot.querySelector("input")?.checked;
  const what = describe(slot);
  slot.remove();
  announce(
    chosen
      ? `The time you chose, ${what}, was just taken. Please choose another.`
      : `${what} was just taken by someone else.`,
  );
}

// After a reconnect, changes may have been missed: ask the API which times are still free.
async function reconcile(doctorId) {
  const query = new URLSearchParams({ from: week.dataset.from, to: week.dataset.to });
  const response = await fetch(`/api/v1/doctors/${encodeURIComponent(doctorId)}/availability?${query}`);
  if (!response.ok) {
    return;
  }
  const free = new Set((await response.json()).slots.map((s) => s.start));
  for (const slot of week.querySelectorAll("[data-slot]")) {
    if (!free.has(slot.dataset.slot)) {
      removeSlot(slot.dataset.slot);
    }
  }
}

if (week && "EventSource" in window) {
  const doctorId = week.dataset.liveDoctor;
  const source = new EventSource(`/doctors/${encodeURIComponent(doctorId)}/live`);
  let streams = 0;
  source.addEventListener("ready", () => {
    streams += 1;
    week.dataset.live = "on";
    if (streams > 1) {
      reconcile(doctorId).catch(() => {});
    }
  });
  source.addEventListener("slots", (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    for (const start of change.taken || []) {
      removeSlot(start);
    }
    if ((change.freed || []).length) {
      announce("A time has just become free: reload the page to see it.");
    }
  });
  window.addEventListener("pagehide", () => source.close());
}
