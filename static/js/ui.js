// Small page-wide enhancements: dismissable flashes, confirm-before-delete, password
// show/hide, local times, and swapping a status badge for another status.

/** Replace the badge inside `slot` with the one for `status`, from <template data-badge-template>. */
export function replaceBadge(slot, status) {
  const tpl = document.querySelector(`template[data-badge-template="${status}"]`);
  if (!slot || !tpl) return;
  slot.replaceChildren(tpl.content.cloneNode(true));
}

function initFlashes(root) {
  root.querySelectorAll("[data-dismiss]").forEach((btn) => {
    btn.addEventListener("click", () => {
      const flash = btn.closest(".flash");
      const container = flash?.parentElement;
      flash?.remove();
      if (container && !container.children.length) container.remove();
      document.getElementById("main")?.focus({ preventScroll: true });
    });
  });
}

/** Forms with data-confirm="question" ask first (a <dialog>); without JS they just submit. */
function initConfirm(root) {
  const dialog = document.querySelector("[data-confirm-dialog]");
  root.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => {
      if (form.dataset.confirmed === "1") return;
      e.preventDefault();
      const question = form.dataset.confirm;
      if (!dialog || typeof dialog.showModal !== "function") {
        if (window.confirm(question)) {
          form.dataset.confirmed = "1";
          form.submit();
        }
        return;
      }
      dialog.querySelector('[data-slot="confirm-text"]').textContent = question;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => {
        if (dialog.returnValue === "ok") {
          form.dataset.confirmed = "1";
          form.querySelectorAll('button[type="submit"]').forEach((b) => { b.disabled = true; });
          form.submit();
        }
      }, { once: true });
      dialog.showModal();
    });
  });
}

function initPasswordToggles(root) {
  root.querySelectorAll("[data-password-toggle]").forEach((btn) => {
    const input = document.getElementById(btn.dataset.passwordToggle);
    if (!input) return;
    btn.setAttribute("aria-controls", input.id);
    btn.setAttribute("aria-label", "Show password");
    btn.addEventListener("click", () => {
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      btn.setAttribute("aria-pressed", String(show));
      btn.setAttribute("aria-label", show ? "Hide password" : "Show password");
      btn.querySelector("span").textContent = show ? "Hide" : "Show";
    });
  });
}

/** <time data-local-time="date|datetime" datetime="...Z"> shown in the reader's time zone. */
function initLocalTimes(root) {
  root.querySelectorAll("time[data-local-time]").forEach((el) => {
    const d = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(d.getTime())) return;
    const opts = el.dataset.localTime === "datetime"
      ? { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" }
      : { day: "numeric", month: "short", year: "numeric" };
    el.textContent = d.toLocaleString(undefined, opts);
  });
}

export function initUi(root = document) {
  initFlashes(root);
  initConfirm(root);
  initPasswordToggles(root);
  initLocalTimes(root);
}
