// Progressive enhancement only: every page works without this file.

// Times are shown in the browser's own time zone: the server reads it from a cookie.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const current = document.cookie.split("; ").find((c) => c.startsWith("ehass_tz="));
if (zone && (!current || decodeURIComponent(current.slice(9)) !== zone)) {
  // IANA names (Europe/Berlin, America/Argentina/Buenos_Aires) are cookie-safe as they are.
  document.cookie = `ehass_tz=${zone}; path=/; max-age=31536000; samesite=lax`;
  // Reload once so the times on this page are in that zone too (never in a loop).
  if (!sessionStorage.getItem("ehass_tz_reloaded") && document.querySelector("time")) {
    sessionStorage.setItem("ehass_tz_reloaded", "1");
    window.location.reload();
  }
}

// After a refused form, take keyboard and screen-reader users to the list of problems.
const problems = document.getElementById("form-problems");
if (problems) {
  problems.focus();
}
