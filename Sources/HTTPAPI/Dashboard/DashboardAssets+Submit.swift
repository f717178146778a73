extension DashboardAssets {
    /// The submit page: a form that becomes a JSON job spec (a sweep of prompts × seeds × CFG values) with a live
    /// count of the tasks it makes, and the last part of the script, which starts the router.
    static let submitPage = #"""
        const samplers = ["euler_a", "euler", "ddim", "ddpm", "pndm", "lms", "heun", "dpmpp_2m", "dpmpp_2m_karras",
          "dpm2", "unipc", "lcm", "dpmpp_sde_karras"];

        // The seeds of "1-4" or "1, 7, 42": a count and the spec's form of them; throws a message when malformed.
        function parseSeeds(text) {
          const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
          if (range) {
            const [low, high] = [Number(range[1]), Number(range[2])];
            if (high < low) throw new Error("seeds: the range ends before it starts");
            return { count: high - low + 1, spec: low + "-" + high };
          }
          const list = text.split(/[\s,]+/).filter((part) => part !== "");
          if (list.length === 0) throw new Error("seeds: give a range like 1-4 or a list like 1, 7, 42");
          if (list.some((part) => !/^\d+$/.test(part))) throw new Error("seeds: whole numbers only");
          return { count: list.length, spec: list.map(Number) };
        }

        function field(id, label, input, hint) {
          input.id = id;
          if (hint) input.setAttribute("aria-describedby", id + "-hint");
          return h("div", { class: input.tagName === "TEXTAREA" ? "wide" : "" },
            h("label", { for: id }, label), input, hint ? h("div", { class: "hint", id: id + "-hint" }, hint) : null);
        }

        function renderSubmit(view, main) {
          const models = h("datalist", { id: "model-list" });
          const inputs = {
            name: h("input", { value: "dashboard job", maxlength: 200 }),
            prompts: h("textarea", { required: true, rows: 5 }),
            negative: h("input", {}),
            model: h("input", { list: "model-list", required: true, autocomplete: "off" }),
            width: h("input", { type: "number", min: 8, max: 2048, step: 8, value: 512 }),
            height: h("input", { type: "number", min: 8, max: 2048, step: 8, value: 512 }),
            steps: h("input", { type: "number", min: 1, max: 150, value: 20 }),
            cfg: h("input", { value: "7" }),
            sampler: h("select", {}, samplers.map((name) => h("option", { value: name }, name))),
            seeds: h("input", { value: "1" }),
            initImage: h("input", { type: "file", accept: "image/png" }),
            strength: h("input", { type: "number", min: 0.01, max: 1, step: 0.01, value: 0.75 }),
          };
          const count = h("output", { id: "task-count", class: "count", for: "prompts seeds cfg", "aria-live": "polite" });
          const send = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit");
          const form = h("form", { class: "submit", id: "submit-form", novalidate: true },
            field("job-name", "Name", inputs.name),
            field("prompts", "Prompts", inputs.prompts, "One prompt per line; each line is swept over every seed and CFG value."),
            field("negative", "Negative prompt", inputs.negative),
            field("model", "Model", inputs.model, "A model the workers hold (the list shows what connected workers have)."),
            field("width", "Width", inputs.width), field("height", "Height", inputs.height),
            field("steps", "Steps", inputs.steps),
            field("cfg", "CFG", inputs.cfg, "One value, or several separated by commas to sweep them."),
            field("sampler", "Sampler", inputs.sampler),
            field("seeds", "Seeds", inputs.seeds, "A range like 1-4 or a list like 1, 7, 42."),
            field("init-image", "Init image (img2img, optional)", inputs.initImage, "A PNG every task starts from."),
            field("strength", "Strength", inputs.strength, "How far from the init image, 0–1 (img2img only)."),
            h("div", { class: "wide" }, count),
            h("div", { class: "wide" }, send));
          main.append(h("h1", {}, "Submit a job"), models, form);

          // The spec the form describes, and how many tasks it makes; throws a message naming the bad field.
          function spec() {
            const prompts = inputs.prompts.value.split("\n").map((line) => line.trim()).filter((line) => line !== "");
            if (prompts.length === 0) throw new Error("prompts: write at least one line");
            const seeds = parseSeeds(inputs.seeds.value);
            const cfgs = inputs.cfg.value.split(",").map((part) => part.trim()).filter((part) => part !== "").map(Number);
            if (cfgs.length === 0 || cfgs.some((value) => !isFinite(value))) throw new Error("CFG: numbers separated by commas");
            const defaults = { width: Number(inputs.width.value), height: Number(inputs.height.value),
              steps: Number(inputs.steps.value), sampler: inputs.sampler.value };
            if (inputs.negative.value.trim()) defaults.negative = inputs.negative.value.trim();
            const body = { name: inputs.name.value.trim() || "dashboard job", model: inputs.model.value.trim(), defaults,
              sweep: { prompt: prompts, seed: seeds.spec, cfg: cfgs } };
            return { body, tasks: prompts.length * seeds.count * cfgs.length, parts: [prompts.length, seeds.count, cfgs.length] };
          }
          function recount() {
            try {
              const { tasks, parts } = spec();
              count.textContent = tasks + " task" + (tasks === 1 ? "" : "s") + " (" + parts[0] + " prompt(s) × " + parts[1] +
                " seed(s) × " + parts[2] + " CFG value(s))";
              count.dataset.tasks = String(tasks);
            } catch (error) {
              count.textContent = error.message;
              count.dataset.tasks = "";
            }
          }
          form.addEventListener("input", recount);
          recount();
          form.addEventListener("submit", async (event) => {
            event.preventDefault();
            send.disabled = true;
            await attempt(async () => {
              const { body } = spec();
              if (!body.model) throw new Error("model: name a model the workers hold");
              const file = inputs.initImage.files[0];
              if (file) {
                // The image is stored first; the spec names it by its SHA-256.
                const stored = await postJSON("images", { body: file, type: "image/png" });
                body.defaults.init_image = stored.sha256;
                body.defaults.strength = Number(inputs.strength.value);
              }
              const reply = await postJSON("jobs?format=json", { body: JSON.stringify(body), type: "application/json" });
              go("#/job/" + reply.id);
            });
            send.disabled = false;
          });
          attempt(async () => {
            const names = await getJSON("models");
            models.replaceChildren(...names.map((name) => h("option", { value: name })));
            if (!inputs.model.value && names.length > 0) inputs.model.value = names[0];
            form.dataset.models = String(names.length);
          });
          inputs.prompts.focus();
        }
        """#

    /// Wires the page's fixed controls and draws the first view.
    static let startup = #"""
        function start() {
          $("sign-out").addEventListener("click", () => signOut());
          $("error-close").addEventListener("click", clearError);
          $("viewer-close").addEventListener("click", () => $("viewer").close());
          window.addEventListener("hashchange", route);
          route();
        }
        if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
        else start();
        """#
}
