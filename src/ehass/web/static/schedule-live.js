// The doctor's schedule says so when a booking arrives or is moved or cancelled meanwhile.
// It does not reload by itself: that would take the keyboard focus away mid-task.
const status = document.querySelector("[data-live-schedule]");

if (status && "EventSource" in window) {
  const doctorId = status.dataset.liveSchedule;
  const source = new EventSource(`/doctors/${encodeURIComponent(doctorId)}/live`);
  source.addEventListener("ready", () => {
    status.dataset.live = "on";
  });
  source.addEventListener("slots", (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch {
      return;
    }
    const booked = (change.taken || []).length;
    const freed = (change.freed || []).length;
    if (!booked && !freed) {
      return;
    }
    status.textContent = "";
    status.append(
      booked ? "A new booking has arrived. " : "An appointment was cancelled or moved. ",
    );
    const link = document.createElement("a");
    link.href = window.location.pathname + window.location.search;
    link.textContent = "Show the updated schedule";
    status.append(link);
  });
  window.addEventListener("pagehide", () => source.close());
}
