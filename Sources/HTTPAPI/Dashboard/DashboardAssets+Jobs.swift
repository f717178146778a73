extension DashboardAssets {
    /// The jobs page: every job the token may see, newest first and paged, with its progress, rate and ETA, and
    /// (for an admin) pause, resume, cancel and retry.
    static let jobsPage = #"""
        const jobsPerPage = 25;

        // A job's progress: a bar of finished tasks and the counts in words.
        function progressCell(job, id) {
          const c = job.counts;
          const finished = c.done + c.failed + c.cancelled;
          const total = job.tasks || finished + c.queued + c.running;
          return h("div", { class: "progress" },
            h("progress", { id: id, max: Math.max(total, 1), value: finished, "aria-label": "Job " + job.id + " progress" }),
            h("span", { id: id + "-text" }, c.done + "/" + total + " done"),
            c.failed ? h("span", { class: "bad" }, c.failed + " failed") : null,
            c.cancelled ? h("span", {}, c.cancelled + " cancelled") : null,
            c.running ? h("span", { class: "note" }, c.running + " running") : null);
        }

        // The admin's controls of a job: each posts the action and then redraws.
        function jobActions(job, after) {
          if (!session.isAdmin) return null;
          const actions = [];
          if (job.state === "active") actions.push("pause");
          if (job.state === "paused") actions.push("resume");
          if (job.state === "active" || job.state === "paused") actions.push("cancel");
          if (job.counts.failed > 0) actions.push("retry");
          return h("div", { class: "actions" }, actions.map((action) =>
            h("button", {
              type: "button", id: "job-" + job.id + "-" + action, "aria-label": action + " job " + job.id,
              onclick: () => attempt(async () => {
                if (action === "cancel" && !confirm("Cancel job " + job.id + "? Its unfinished tasks stop.")) return;
                await postJSON("jobs/" + job.id + "/" + action);
                await after();
              }),
            }, action)));
        }

        function renderJobs(view, main) {
          let page = 0;
          let last = "";
          const body = h("tbody");
          const table = h("table", { id: "jobs" },
            h("caption", { class: "note" }, session.isAdmin ? "Every job on the farm, newest first." : "Your jobs, newest first."),
            h("thead", {}, h("tr", {},
              h("th", { scope: "col" }, "Job"), h("th", { scope: "col" }, "Name"),
              h("th", { scope: "col", class: "hide-narrow" }, "Owner"), h("th", { scope: "col" }, "State"),
              h("th", { scope: "col" }, "Progress"), h("th", { scope: "col", class: "hide-narrow" }, "Rate"),
              h("th", { scope: "col", class: "hide-narrow" }, "ETA"), session.isAdmin ? h("th", { scope: "col" }, "Actions") : null)),
            body);
          const status = h("span", { id: "jobs-page", "aria-live": "polite" });
          const previous = h("button", { type: "button", id: "jobs-previous", onclick: () => { page -= 1; last = ""; refresh(); } }, "Newer");
          const next = h("button", { type: "button", id: "jobs-next", onclick: () => { page += 1; last = ""; refresh(); } }, "Older");
          main.append(h("h1", {}, "Jobs"), h("div", { class: "table" }, table), h("div", { class: "pager" }, previous, status, next));

          async function refresh() {
            const jobs = (await getJSON("jobs")).reverse();
            const pages = Math.max(1, Math.ceil(jobs.length / jobsPerPage));
            page = Math.min(Math.max(page, 0), pages - 1);
            const shown = jobs.slice(page * jobsPerPage, (page + 1) * jobsPerPage);
            // Rate and ETA of the unfinished jobs on this page only.
            const details = await Promise.all(shown.map((job) =>
              job.state === "active" || job.state === "paused" ? getJSON("jobs/" + job.id).catch(() => null) : null));
            if (!view.alive) return;
            const snapshot = JSON.stringify([shown, details, page, jobs.length]);
            if (snapshot !== last) {
              last = snapshot;
              keepFocus(() => {
                body.replaceChildren(...shown.map((job, index) => {
                  const detail = details[index];
                  return h("tr", { dataset: { job: job.id } },
                    h("td", {}, h("a", { href: "#/job/" + job.id }, "#" + job.id)),
                    h("td", {}, h("a", { href: "#/job/" + job.id }, job.name)),
                    h("td", { class: "hide-narrow" }, job.owner || "–"),
                    h("td", { class: "state" }, job.state),
                    h("td", {}, progressCell(job, "job-" + job.id + "-progress")),
                    h("td", { class: "hide-narrow" }, detail ? formatRate(detail.tasks_per_second) : "–"),
                    h("td", { class: "hide-narrow" }, detail ? formatSeconds(detail.eta_seconds) : "–"),
                    session.isAdmin ? h("td", {}, jobActions(job, refresh)) : null);
                }));
                if (shown.length === 0) {
                  body.append(h("tr", {}, h("td", { colspan: 8, class: "note" }, "No jobs yet. ", h("a", { href: "#/submit" }, "Submit one."))));
                }
              });
              status.textContent = "Page " + (page + 1) + " of " + pages + " (" + jobs.length + " jobs)";
              previous.disabled = page === 0;
              next.disabled = page >= pages - 1;
            }
            table.dataset.loaded = "true";
          }
          view.every(2000, refresh);
        }
        """#
}
