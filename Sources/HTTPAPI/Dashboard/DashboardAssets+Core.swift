extension DashboardAssets {
    /// The script's core: building elements, the session (token and role in session storage), API calls whose
    /// errors are shown in words, the hash router, polling and the event stream with reconnects.
    static let core = #"""
        "use strict";
        const $ = (id) => document.getElementById(id);

        // Builds an element; strings become text nodes (never HTML), "on…" attributes become listeners.
        function h(tag, attributes, ...children) {
          const element = document.createElement(tag);
          for (const [key, value] of Object.entries(attributes || {})) {
            if (value === undefined || value === null || value === false) continue;
            if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
            else if (key === "dataset") Object.assign(element.dataset, value);
            else element.setAttribute(key, value === true ? "" : String(value));
          }
          for (const child of children.flat()) {
            if (child === undefined || child === null || child === false) continue;
            element.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return element;
        }

        // The token and its role live in this tab's session storage only.
        const session = {
          get token() { return sessionStorage.getItem("farm.token"); },
          get role() { return sessionStorage.getItem("farm.role"); },
          get isAdmin() { return this.role === "admin"; },
          save(token, role) { sessionStorage.setItem("farm.token", token); sessionStorage.setItem("farm.role", role); },
          clear() { sessionStorage.removeItem("farm.token"); sessionStorage.removeItem("farm.role"); },
        };

        class APIError extends Error {
          constructor(message, status) { super(message); this.status = status; }
        }

        // One API call with the bearer token; a failure is an APIError carrying the API's own message.
        async function api(method, path, options = {}) {
          const headers = { Authorization: "Bearer " + (options.token || session.token) };
          if (options.body !== undefined) headers["Content-Type"] = options.type || "application/json";
          let response;
          try {
            response = await fetch("/v1/" + path, { method, headers, body: options.body, signal: options.signal });
          } catch (error) {
            if (error.name === "AbortError") throw error;
            throw new APIError("cannot reach the coordinator (" + error.message + ")", 0);
          }
          if (!response.ok) {
            let message = "HTTP " + response.status + " from " + method + " /v1/" + path;
            try {
              const body = await response.json();
              if (body.error) message = body.error;
              if (body.field) message += " (field " + body.field + (body.line ? ", line " + body.line : "") + ")";
            } catch (ignored) { /* not JSON: keep the status */ }
            if (response.status === 401 && !options.token) signOut("Signed out: " + message + ".");
            throw new APIError(message, response.status);
          }
          return response;
        }
        const getJSON = async (path, options) => (await api("GET", path, options)).json();
        const postJSON = async (path, options) => (await api("POST", path, options)).json();

        function showError(message) {
          $("error-text").textContent = message;
          $("error").hidden = false;
        }
        function clearError() {
          $("error").hidden = true;
          $("error-text").textContent = "";
        }
        // Runs an action and shows its failure, if any, in words.
        async function attempt(action) {
          try {
            return await action();
          } catch (error) {
            if (error.name !== "AbortError") showError(error.message);
          }
        }

        function formatSeconds(seconds) {
          if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
          const s = Math.round(seconds);
          if (s < 60) return s + " s";
          if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
          return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
        }
        const formatRate = (rate) => (rate > 0 ? rate.toFixed(rate < 1 ? 3 : 1) + " /s" : "–");

        // Redraws with `draw` and gives focus back to the element that had it (matched by id), so that polling
        // does not throw a keyboard user out of a table.
        function keepFocus(draw) {
          const focused = document.activeElement && document.activeElement.id;
          draw();
          if (focused && $(focused) && document.activeElement !== $(focused)) $(focused).focus();
        }

        // The view on screen: its timers and streams end when the route changes.
        let currentView = null;
        function newView() {
          if (currentView) {
            currentView.alive = false;
            for (const leave of currentView.leave) leave();
          }
          const view = {
            alive: true,
            leave: [],
            // Runs `work` now and again `ms` after each run ends, until the view goes.
            every(ms, work) {
              const tick = async () => {
                if (!view.alive) return;
                await attempt(work);
                if (view.alive) view.timer = setTimeout(tick, ms);
              };
              view.leave.push(() => clearTimeout(view.timer));
              tick();
            },
          };
          currentView = view;
          return view;
        }

        // Follows /v1/events?job=ID with fetch (EventSource cannot send a token); reconnects with backoff when the
        // stream drops and reports its state through `status`.
        function followEvents(view, job, onEvent, status) {
          const controller = new AbortController();
          view.leave.push(() => controller.abort());
          (async () => {
            let delay = 1000;
            while (view.alive) {
              try {
                const response = await api("GET", "events?job=" + job, { signal: controller.signal });
                status("live");
                delay = 1000;
                const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
                let buffer = "";
                for (;;) {
                  const { value, done } = await reader.read();
                  if (done) break;
                  buffer += value;
                  let end;
                  while ((end = buffer.indexOf("\n\n")) >= 0) {
                    const block = buffer.slice(0, end);
                    buffer = buffer.slice(end + 2);
                    let name = "message";
                    let data = "";
                    for (const line of block.split("\n")) {
                      if (line.startsWith("event:")) name = line.slice(6).trim();
                      else if (line.startsWith("data:")) data += line.slice(5).trim();
                    }
                    if (data) {
                      try { onEvent(name, JSON.parse(data)); } catch (ignored) { /* a malformed event is skipped */ }
                    }
                  }
                }
              } catch (error) {
                if (error.name === "AbortError" || !view.alive || error.status === 401) return;
                if (error.status === 404) return status("no such job");
              }
              if (!view.alive) return;
              status("stream dropped; reconnecting in " + delay / 1000 + " s");
              await new Promise((resolve) => setTimeout(resolve, delay));
              delay = Math.min(delay * 2, 30000);
            }
          })();
        }

        // The page's nav shows where the reader is; workers are an admin page.
        function updateNav(page) {
          $("nav").hidden = false;
          $("nav-workers").hidden = !session.isAdmin;
          $("who").textContent = session.isAdmin ? "admin token" : "submit token";
          for (const [id, name] of [["nav-jobs", "jobs"], ["nav-submit", "submit"], ["nav-workers", "workers"]]) {
            if (name === page) $(id).setAttribute("aria-current", "page");
            else $(id).removeAttribute("aria-current");
          }
        }

        function route() {
          const view = newView();
          clearError();
          const main = $("main");
          main.replaceChildren();
          if (!session.token) return renderSignIn(view, main);
          const [, page, argument] = (location.hash || "#/jobs").split("/");
          updateNav(page || "jobs");
          if (page === "job" && /^\d+$/.test(argument || "")) renderJob(view, main, Number(argument));
          else if (page === "workers" && session.isAdmin) renderWorkers(view, main);
          else if (page === "submit") renderSubmit(view, main);
          else renderJobs(view, main);
        }

        function go(hash) {
          if (location.hash === hash) route();
          else location.hash = hash;
        }

        function signOut(message) {
          session.clear();
          go("#/signin");
          if (message) showError(message);
        }

        function renderSignIn(view, main) {
          $("nav").hidden = true;
          const input = h("input", {
            id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
            "aria-describedby": "token-hint",
          });
          const button = h("button", { type: "submit", class: "primary", id: "sign-in" }, "Sign in");
          const form = h("form", { class: "signin", id: "sign-in-form" },
            h("h1", {}, "Sign in"),
            h("label", { for: "token" }, "API token"), input,
            h("p", { id: "token-hint", class: "hint" },
              "Paste a token from “farm tokens create”. It stays in this browser tab (session storage) and is sent ",
              "as the bearer token with each request."),
            button);
          form.addEventListener("submit", async (event) => {
            event.preventDefault();
            button.disabled = true;
            await attempt(() => signIn(input.value.trim()));
            button.disabled = false;
          });
          main.append(form);
          input.focus();
        }

        async function signIn(token) {
          if (!token) throw new Error("paste a token first");
          await api("GET", "jobs", { token });
          let role = "submit";
          try {
            await api("GET", "workers", { token });
            role = "admin";
          } catch (error) {
            if (error.status !== 403) throw error;
          }
          session.save(token, role);
          go("#/jobs");
        }
        """#
}
