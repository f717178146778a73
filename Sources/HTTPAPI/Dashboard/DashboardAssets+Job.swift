extension DashboardAssets {
    /// A job's page: its progress, rate and ETA, failures with their reasons, the tasks rendering now with their
    /// step and latest preview (from `/v1/events`, coalesced), and the gallery.
    static let jobPage = #"""
        function renderJob(view, main, id) {
          const title = h("h1", { id: "job-title" }, "Job " + id);
          const summary = h("div", { class: "summary", id: "job-summary" });
          const progress = h("div", { id: "job-progress-box" });
          const actions = h("div", { id: "job-actions" });
          const failures = h("div", { id: "job-failures" });
          const streamState = h("span", { id: "stream-state", class: "note" }, "connecting…");
          const live = h("div", { class: "live", id: "live", "aria-live": "off" });
          const gallery = makeGallery(view, id);
          main.append(title, summary, progress, actions,
            h("h2", {}, "Rendering now ", streamState), live,
            h("h2", {}, "Failures"), failures,
            h("h2", {}, "Gallery"), gallery.element);

          let lastDetail = "";
          let lastFinished = -1;
          async function refresh() {
            let detail;
            try {
              detail = await getJSON("jobs/" + id);
            } catch (error) {
              if (error.status === 404) {
                title.textContent = "Job " + id;
                main.dataset.missing = "true";
              }
              throw error;
            }
            if (!view.alive) return;
            const snapshot = JSON.stringify(detail);
            if (snapshot !== lastDetail) {
              lastDetail = snapshot;
              title.textContent = "Job " + id + ": " + detail.name;
              summary.replaceChildren(
                h("span", {}, "State: ", h("strong", { id: "job-state" }, detail.state)),
                h("span", {}, "Owner: ", detail.owner || "–"),
                h("span", {}, "Model: ", detail.model || "–"),
                h("span", {}, "Rate: ", h("span", { id: "job-rate" }, formatRate(detail.tasks_per_second))),
                h("span", {}, "ETA: ", h("span", { id: "job-eta" },
                  detail.counts.queued + detail.counts.running === 0 ? "–" : formatSeconds(detail.eta_seconds))));
              keepFocus(() => {
                progress.replaceChildren(progressCell({ id, tasks: detail.tasks, counts: detail.counts }, "job-progress"));
                actions.replaceChildren(jobActions({ id, state: detail.state, counts: detail.counts }, refresh) || "");
              });
              failures.replaceChildren(detail.failures.length === 0
                ? h("p", { class: "note" }, "No failed tasks.")
                : h("ul", {}, detail.failures.map((group) =>
                    h("li", {}, h("span", { class: "bad" }, group.tasks + " task(s): "), group.reason || "(no reason given)"))));
            }
            // The gallery follows the finished count: new images are fetched once per change, not once per event.
            const finished = detail.counts.done;
            if (finished !== lastFinished) {
              lastFinished = finished;
              await gallery.refresh(finished);
            }
            main.dataset.loaded = "true";
          }
          view.every(2000, refresh);

          // Live progress and previews, drawn at most four times a second however fast events come.
          const running = new Map();
          let drawScheduled = false;
          function scheduleDraw() {
            if (drawScheduled) return;
            drawScheduled = true;
            setTimeout(() => {
              drawScheduled = false;
              if (!view.alive) return;
              const cards = [...running.entries()].sort((a, b) => a[0] - b[0]).slice(0, 24);
              live.replaceChildren(...cards.map(([task, state]) => h("figure", { dataset: { task } },
                state.png ? h("img", { src: "data:image/png;base64," + state.png, alt: "Preview of task " + task + " at step " + state.previewStep })
                          : h("img", { alt: "No preview of task " + task + " yet" }),
                h("figcaption", {},
                  h("progress", { max: state.total || 1, value: state.step || 0, "aria-label": "Task " + task + " steps" }),
                  " task " + task + " · step " + (state.step || 0) + "/" + (state.total || "?") + (state.worker ? " · " + state.worker : "")))));
              if (cards.length === 0) live.append(h("p", { class: "note" }, "Nothing of this job is rendering."));
            }, 250);
          }
          followEvents(view, id, (name, event) => {
            const state = running.get(event.task) || {};
            if (name === "progress") {
              Object.assign(state, { step: event.step, total: event.total, worker: event.worker });
              running.set(event.task, state);
            } else if (name === "preview") {
              Object.assign(state, { png: event.png, previewStep: event.step });
              running.set(event.task, state);
            } else if (name === "done" || name === "failed") {
              running.delete(event.task);
              if (name === "failed") lastDetail = "";
            }
            scheduleDraw();
          }, (text) => { streamState.textContent = "(" + text + ")"; });
          scheduleDraw();
        }
        """#
}
