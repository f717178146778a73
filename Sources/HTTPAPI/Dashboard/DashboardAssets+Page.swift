extension DashboardAssets {
    /// The one page: a header with the navigation, an error banner, and the main area each view draws into.
    static let page = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>DiffusionFarm</title>
        <link rel="stylesheet" href="/dashboard.css">
        <script src="/dashboard.js" defer></script>
        </head>
        <body>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <span class="brand">DiffusionFarm</span>
          <nav id="nav" aria-label="Pages" hidden>
            <a href="#/jobs" id="nav-jobs">Jobs</a>
            <a href="#/submit" id="nav-submit">Submit</a>
            <a href="#/workers" id="nav-workers" hidden>Workers</a>
            <span id="who" class="who"></span>
            <button type="button" id="sign-out">Sign out</button>
          </nav>
        </header>
        <div id="error" class="error" role="alert" hidden>
          <span id="error-text"></span>
          <button type="button" id="error-close" aria-label="Dismiss the error">×</button>
        </div>
        <main id="main" tabindex="-1"><p>Loading…</p></main>
        <dialog id="viewer" aria-labelledby="viewer-title">
          <div class="viewer">
            <h2 id="viewer-title">Image</h2>
            <img id="viewer-image" alt="">
            <h3>Parameters</h3>
            <pre id="viewer-parameters"></pre>
            <p class="actions">
              <a id="viewer-download" class="button" download>Download PNG</a>
              <button type="button" id="viewer-close">Close</button>
            </p>
          </div>
        </dialog>
        </body>
        </html>
        """#

    /// The style sheet: light and dark schemes with AA contrast, a layout that folds to one column on a phone.
    static let style = #"""
        :root { --bg: #ffffff; --fg: #1a1a1a; --muted: #555; --line: #d0d0d0; --accent: #0b5cad; --bad: #a4000f;
                --ok: #1d6b2a; --panel: #f4f5f7; color-scheme: light dark; }
        @media (prefers-color-scheme: dark) {
          :root { --bg: #15171a; --fg: #eceff3; --muted: #b4bac2; --line: #3a3f46; --accent: #7cb8ff; --bad: #ff8a8a;
                  --ok: #7fd88d; --panel: #1f2226; }
        }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.45 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
        a { color: var(--accent); }
        .skip { position: absolute; left: -999px; }
        .skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 4px; z-index: 10; }
        header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 16px;
                 border-bottom: 1px solid var(--line); background: var(--panel); }
        .brand { font-weight: 700; }
        nav { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; flex: 1; }
        nav a[aria-current="page"] { font-weight: 700; text-decoration: none; }
        .who { margin-left: auto; color: var(--muted); }
        main { padding: 16px; max-width: 1200px; margin: 0 auto; }
        main:focus { outline: none; }
        h1 { font-size: 1.4em; margin: 0 0 12px; }
        h2 { font-size: 1.15em; margin: 20px 0 8px; }
        :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
        button, .button { font: inherit; padding: 5px 12px; border: 1px solid var(--accent); border-radius: 4px;
                          background: var(--bg); color: var(--accent); cursor: pointer; text-decoration: none;
                          display: inline-block; }
        button.primary { background: var(--accent); color: var(--bg); }
        button:disabled { opacity: 0.5; cursor: default; }
        .error { margin: 12px 16px; padding: 10px 12px; border: 2px solid var(--bad); color: var(--bad);
                 border-radius: 4px; display: flex; gap: 12px; align-items: flex-start; }
        .error[hidden] { display: none; }
        .error span { flex: 1; }
        .note { color: var(--muted); }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-weight: 600; }
        .table { overflow-x: auto; }
        progress { width: 160px; height: 14px; vertical-align: middle; }
        .progress { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
        .bad { color: var(--bad); }
        .ok { color: var(--ok); }
        .state { font-weight: 600; }
        .actions { display: flex; flex-wrap: wrap; gap: 6px; }
        .pager { display: flex; gap: 8px; align-items: center; margin: 8px 0; }
        form.submit { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 12px; }
        form.submit .wide { grid-column: 1 / -1; }
        label { display: block; font-weight: 600; margin-bottom: 2px; }
        input, select, textarea { font: inherit; width: 100%; padding: 5px; border: 1px solid var(--line);
                                  border-radius: 4px; background: var(--bg); color: var(--fg); }
        textarea { min-height: 6em; }
        .hint { color: var(--muted); font-size: 0.9em; }
        .count { font-size: 1.1em; font-weight: 600; }
        .signin { max-width: 520px; }
        .gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 8px; }
        .thumb { padding: 0; border: 1px solid var(--line); background: var(--panel); aspect-ratio: 1; overflow: hidden; }
        .thumb img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; display: block; }
        .thumb span { font-size: 0.8em; }
        .live { display: flex; flex-wrap: wrap; gap: 12px; }
        .live figure { margin: 0; width: 150px; }
        .live img { width: 150px; height: 150px; object-fit: contain; image-rendering: pixelated; background: var(--panel); }
        .live figcaption { font-size: 0.85em; }
        dialog { max-width: min(900px, 96vw); border: 1px solid var(--line); background: var(--bg); color: var(--fg); }
        dialog::backdrop { background: rgba(0, 0, 0, 0.6); }
        .viewer img { max-width: 100%; min-width: 256px; image-rendering: pixelated; }
        pre { white-space: pre-wrap; word-break: break-word; background: var(--panel); padding: 8px; }
        .summary { display: flex; flex-wrap: wrap; gap: 16px; margin-bottom: 8px; }
        @media (max-width: 640px) {
          main { padding: 10px; }
          .hide-narrow { display: none; }
          progress { width: 100px; }
        }
        """#
}
