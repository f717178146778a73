extension DashboardAssets {
    /// The workers page (admin tokens): each worker's host, device, state, model, current task and step, speed,
    /// last heartbeat and failures, with drain, cordon and uncordon.
    static let workersPage = #"""
        function renderWorkers(view, main) {
          let last = "";
          const body = h("tbody");
          const table = h("table", { id: "workers" },
            h("thead", {}, h("tr", {}, ["Worker", "Host", "Device", "State", "Model", "Task", "Step", "it/s", "Heartbeat",
              "Failures", "Actions"].map((name) => h("th", { scope: "col" }, name)))),
            body);
          main.append(h("h1", {}, "Workers"), h("div", { class: "table" }, table));

          function act(worker, action) {
            return attempt(async () => {
              const reply = await postJSON("workers/" + encodeURIComponent(worker.name) + "/" + action);
              // Show the new state at once; the next poll confirms it.
              const cell = body.querySelector('td.state[data-worker="' + CSS.escape(worker.name) + '"]');
              if (cell) { cell.textContent = reply.state; cell.dataset.state = reply.state; }
              last = "";
              await refresh();
            });
          }

          async function refresh() {
            const workers = await getJSON("workers");
            if (!view.alive) return;
            const snapshot = JSON.stringify(workers.map((w) => ({ ...w, seconds_since_heartbeat: Math.round(w.seconds_since_heartbeat) })));
            if (snapshot !== last) {
              last = snapshot;
              keepFocus(() => body.replaceChildren(...workers.map((worker, index) => {
                const current = worker.current;
                const actions = [];
                if (worker.state === "online") actions.push("drain", "cordon");
                if (worker.state === "cordoned") actions.push("uncordon", "drain");
                if (worker.state === "draining") actions.push("uncordon");
                return h("tr", { dataset: { worker: worker.name } },
                  h("th", { scope: "row" }, worker.name),
                  h("td", {}, worker.host || "–"),
                  h("td", {}, worker.device || "–"),
                  h("td", { class: "state", dataset: { worker: worker.name, state: worker.state } }, worker.state),
                  h("td", {}, worker.loaded_model || "–"),
                  h("td", {}, current ? h("a", { href: "#/job/" + current.job }, "task " + current.task + " (job " + current.job + ")") : "–"),
                  h("td", {}, current ? current.step + "/" + current.total_steps : "–"),
                  h("td", {}, current && current.steps_per_second ? current.steps_per_second.toFixed(2) : "–"),
                  h("td", {}, formatSeconds(worker.seconds_since_heartbeat) + " ago"),
                  h("td", { class: worker.failures ? "bad" : "" }, String(worker.failures)),
                  h("td", {}, h("div", { class: "actions" }, actions.map((action) => h("button", {
                    type: "button", id: "worker-" + index + "-" + action, "aria-label": action + " " + worker.name,
                    dataset: { worker: worker.name, action }, onclick: () => act(worker, action),
                  }, action)))));
              })));
              if (workers.length === 0) body.append(h("tr", {}, h("td", { colspan: 11, class: "note" }, "No worker has connected yet.")));
            }
            table.dataset.loaded = "true";
          }
          view.every(2000, refresh);
        }
        """#
}
