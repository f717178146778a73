extension DashboardAssets {
    /// A job's gallery: thumbnails paged and fetched lazily (with the token, as `blob:` URLs) when they scroll into
    /// view, a viewer with the full PNG and the A1111 parameters from its text chunk, and downloads.
    static let galleryPart = #"""
        const imagesPerPage = 60;

        // The text chunks (tEXt, and uncompressed iTXt) of a PNG: A1111's settings are under "parameters".
        function pngText(buffer) {
          const bytes = new Uint8Array(buffer);
          const data = new DataView(buffer);
          const text = new TextDecoder("utf-8");
          const chunks = {};
          let offset = 8;
          while (offset + 12 <= bytes.length) {
            const length = data.getUint32(offset);
            const type = String.fromCharCode(...bytes.subarray(offset + 4, offset + 8));
            const body = bytes.subarray(offset + 8, Math.min(offset + 8 + length, bytes.length));
            if (type === "tEXt") {
              const zero = body.indexOf(0);
              if (zero > 0) chunks[text.decode(body.subarray(0, zero))] = text.decode(body.subarray(zero + 1));
            } else if (type === "iTXt") {
              const zero = body.indexOf(0);
              if (zero > 0 && body[zero + 1] === 0) {
                const language = body.indexOf(0, zero + 3);
                const translated = language < 0 ? -1 : body.indexOf(0, language + 1);
                if (translated >= 0) chunks[text.decode(body.subarray(0, zero))] = text.decode(body.subarray(translated + 1));
              }
            } else if (type === "IEND") {
              break;
            }
            offset += 12 + length;
          }
          return chunks;
        }

        function makeGallery(view, job) {
          let images = [];
          let total = 0;
          let page = 0;
          const cache = new Map();
          view.leave.push(() => { for (const entry of cache.values()) entry.then((e) => URL.revokeObjectURL(e.url), () => {}); });
          // One fetch per image, shared by its thumbnail, the viewer and downloads.
          function load(task) {
            if (!cache.has(task)) {
              const entry = api("GET", "tasks/" + task + "/image").then((r) => r.blob()).then((blob) => ({ blob, url: URL.createObjectURL(blob) }));
              entry.catch(() => cache.delete(task));
              cache.set(task, entry);
            }
            return cache.get(task);
          }
          const observer = new IntersectionObserver((entries) => {
            for (const entry of entries) {
              if (!entry.isIntersecting) continue;
              observer.unobserve(entry.target);
              const img = entry.target;
              attempt(async () => {
                const { url } = await load(Number(img.dataset.task));
                img.src = url;
              });
            }
          }, { rootMargin: "300px" });
          view.leave.push(() => observer.disconnect());

          const grid = h("div", { class: "gallery", id: "gallery" });
          const status = h("span", { id: "gallery-page", "aria-live": "polite" });
          const previous = h("button", { type: "button", id: "gallery-previous", onclick: () => { page -= 1; attempt(refresh); } }, "Previous");
          const next = h("button", { type: "button", id: "gallery-next", onclick: () => { page += 1; attempt(refresh); } }, "Next");
          const all = h("button", { type: "button", id: "download-all", onclick: () => attempt(downloadAll) }, "Download all");
          const element = h("section", { "aria-label": "Gallery" }, h("div", { class: "pager" }, previous, status, next, all), grid);

          function fileName(image) { return "job" + job + "-" + image.index + "-seed" + image.seed + ".png"; }

          const pageCount = () => Math.max(1, Math.ceil(total / imagesPerPage));

          function draw() {
            const pages = pageCount();
            const shown = images;
            keepFocus(() => grid.replaceChildren(...shown.map((image) => {
              const label = "Image " + image.index + ", seed " + image.seed;
              const img = h("img", { alt: label, dataset: { task: image.task } });
              observer.observe(img);
              return h("button", {
                type: "button", class: "thumb", id: "thumb-" + image.task, "aria-label": "Open " + label.toLowerCase(),
                dataset: { task: image.task }, onclick: () => attempt(() => openViewer(image)),
              }, img);
            })));
            if (images.length === 0) grid.append(h("p", { class: "note" }, "No images yet."));
            status.textContent = total + " image(s) · page " + (page + 1) + " of " + pages;
            previous.disabled = page === 0;
            next.disabled = page >= pages - 1;
            all.disabled = total === 0;
            grid.dataset.count = String(shown.length);
          }

          async function openViewer(image) {
            const { blob, url } = await load(image.task);
            const chunks = pngText(await blob.arrayBuffer());
            $("viewer-title").textContent = "Image " + image.index + " of job " + job + " (seed " + image.seed + ")";
            $("viewer-image").src = url;
            $("viewer-image").alt = "Image " + image.index + ", seed " + image.seed;
            $("viewer-parameters").textContent = chunks.parameters || "(this PNG carries no parameters)";
            $("viewer-download").href = url;
            $("viewer-download").download = fileName(image);
            $("viewer").showModal();
            $("viewer-close").focus();
          }

          // Every image, a thousand list entries at a time, one download each.
          async function downloadAll() {
            if (total > 500 && !confirm(total + " files will download one by one; \"farm fetch " + job + "\" is faster. Go on?")) return;
            for (let offset = 0; offset < total && view.alive; offset += 1000) {
              for (const image of await getJSON("jobs/" + job + "/images?offset=" + offset + "&limit=1000")) {
                const { url } = await load(image.task);
                const link = h("a", { href: url, download: fileName(image) });
                document.body.append(link);
                link.click();
                link.remove();
              }
            }
          }

          // Fetches the shown page of the list alone; `done` (the job's done count) is how many images there are.
          async function refresh(done) {
            if (done !== undefined) total = done;
            page = Math.min(Math.max(page, 0), pageCount() - 1);
            images = await getJSON("jobs/" + job + "/images?offset=" + page * imagesPerPage + "&limit=" + imagesPerPage);
            if (view.alive) draw();
          }
          return { element, refresh };
        }
        """#
}
