// Staff console: modal forms, delete confirmation and live updates, in plain JavaScript.
// Every page works without it: links open full pages and forms post and redirect.
"use strict";

(function () {
  const FETCH_HEADERS = { "X-Requested-With": "fetch" };

  // Poll `refresh` every `intervalMs` while the tab is visible; returns a function that
  // refreshes now. A failed poll (server restart, expired session) says so in the
  // [data-live-status] under `root` instead of logging errors.
  function poll(refresh, intervalMs, root) {
    let timer = null;
    async function tick() {
      window.clearTimeout(timer);
      if (!document.hidden) {
        let problem = "";
        try {
          await refresh();
        } catch (error) {
          problem = `(live updates paused: ${error.message})`;
        }
        const status = root.querySelector("[data-live-status]"); // refresh may have replaced it
        if (status) status.textContent = problem;
      }
      window.clearTimeout(timer); // a manual refresh may have run meanwhile: keep one timer
      timer = window.setTimeout(tick, intervalMs);
    }
    timer = window.setTimeout(tick, intervalMs);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) tick();
    });
    return tick;
  }

  async function fetchOk(url, options) {
    const response = await fetch(url, { credentials: "same-origin", ...options, headers: { ...FETCH_HEADERS, ...(options && options.headers) } });
    if (response.redirected && new URL(response.url).pathname.startsWith("/login")) {
      throw new Error("signed out");
    }
    return response;
  }

  async function fetchJson(url) {
    const response = await fetchOk(url);
    if (!response.ok || !(response.headers.get("Content-Type") || "").includes("json")) {
      throw new Error("HTTP " + response.status);
    }
    return response.json();
  }

  // --- Dashboard: figures, chart and activity without reloading the page ---------------------
  const dashboard = document.querySelector("[data-stats-url]");
  if (dashboard) {
    poll(async () => {
      const data = await fetchJson(dashboard.dataset.statsUrl);
      for (const [key, value] of Object.entries({ ...data.counts, ...data.problems })) {
        const element = dashboard.querySelector(`[data-stat="${key}"]`);
        if (element && element.textContent !== String(value)) element.textContent = value;
      }
      dashboard.querySelector("[data-chart]").innerHTML = data.chart_html;
      dashboard.querySelector("[data-recent]").innerHTML = data.recent_html;
      dashboard.querySelector("[data-by-type]").innerHTML = data.by_type_html;
      dashboard.querySelector("[data-activity]").innerHTML = data.activity_html;
      const updated = dashboard.querySelector("[data-updated-at]");
      updated.dateTime = data.updated_at;
      updated.textContent = data.updated_at.substring(11, 19);
    }, 3000, dashboard);
  }

  // --- Customers: per-row sync badges follow the workers --------------------------------------
  const customerTable = document.querySelector("[data-statuses-url]");
  if (customerTable) {
    poll(async () => {
      const rows = customerTable.querySelectorAll("tr[data-customer-id]");
      if (!rows.length) return;
      const ids = Array.from(rows, (row) => row.dataset.customerId).join(",");
      const data = await fetchJson(`${customerTable.dataset.statusesUrl}?ids=${ids}`);
      for (const row of rows) {
        const state = data.statuses[row.dataset.customerId];
        if (!state) continue; // deleted meanwhile
        const badge = row.querySelector("[data-sync-badge]");
        if (badge.dataset.status !== state.status) {
          badge.dataset.status = state.status;
          badge.className = `badge ${state.badge_class}`;
          badge.textContent = state.label;
        }
        const failed = state.status === "failed";
        // Failed, or deleted in Stripe (unsynced): staff may send it again on purpose. The button
        // is absent for users without the resync permission.
        const resync = row.querySelector("[data-resync]");
        if (resync) resync.hidden = !(failed || state.status === "unsynced");
        const error = row.querySelector("[data-sync-error]");
        error.hidden = !failed;
        error.textContent = failed ? state.error.substring(0, 120) : "";
      }
    }, 2000, document);
  }

  // --- Add/edit in a modal: the server validates and sends the form back with its errors ------
  const customerModalElement = document.getElementById("customer-modal");
  if (customerModalElement) {
    const modal = bootstrap.Modal.getOrCreateInstance(customerModalElement);
    const content = customerModalElement.querySelector(".modal-content");

    function focusFirstField() {
      const field = content.querySelector(".is-invalid") || content.querySelector("input:not([type=hidden])");
      if (field) field.focus();
    }
    customerModalElement.addEventListener("shown.bs.modal", focusFirstField);

    document.addEventListener("click", async (event) => {
      const link = event.target.closest("a[data-modal-form]");
      if (!link) return;
      event.preventDefault();
      try {
        const response = await fetchOk(link.href);
        if (!response.ok) throw new Error("HTTP " + response.status);
        content.innerHTML = await response.text();
        modal.show();
      } catch (error) {
        window.location.href = link.href; // the full-page form
      }
    });

    content.addEventListener("submit", async (event) => {
      const form = event.target.closest("form[data-customer-form]");
      if (!form) return;
      event.preventDefault();
      const submit = form.querySelector("[type=submit]");
      submit.disabled = true;
      try {
        const response = await fetchOk(form.action, { method: "POST", body: new FormData(form) });
        if (!response.ok) throw new Error("HTTP " + response.status);
        if (!(response.headers.get("Content-Type") || "").includes("json")) {
          content.innerHTML = await response.text(); // the form again, errors beside the fields
          focusFirstField();
          return;
        }
        modal.hide();
        window.location.reload(); // the saved row in its sorted place, with the server's message
      } catch (error) {
        submit.disabled = false;
        form.querySelector(".modal-body").insertAdjacentHTML(
          "afterbegin", `<div class="alert alert-danger" role="alert">Not saved: ${error.message}. Try again.</div>`);
      }
    });
  }

  // --- Delete: confirm in a modal, then post --------------------------------------------------
  const deleteModalElement = document.getElementById("delete-modal");
  if (deleteModalElement) {
    const modal = bootstrap.Modal.getOrCreateInstance(deleteModalElement);
    document.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-confirm-delete]");
      if (!link) return;
      event.preventDefault();
      const form = deleteModalElement.querySelector("form[data-delete-form]");
      form.action = link.href;
      deleteModalElement.querySelector("[data-delete-name]").textContent = link.dataset.customerName;
      modal.show();
    });
  }

  // --- Integrations: refresh the table in place -----------------------------------------------
  const refreshable = document.querySelector("[data-refresh-url]");
  if (refreshable) {
    const refresh = poll(async () => {
      const response = await fetchOk(refreshable.dataset.refreshUrl);
      if (!response.ok) throw new Error("HTTP " + response.status);
      refreshable.innerHTML = await response.text();
    }, 5000, refreshable);
    const button = document.querySelector("[data-refresh]");
    if (button) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        refresh();
      });
    }
  }
})();
