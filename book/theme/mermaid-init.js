// Draws the book's ```mermaid blocks (mdbook-mermaid turns each into a
// <pre class="mermaid">) with theme/mermaid.min.js, which `cargo xtask book`
// puts beside this file. No network: the library is served with the book.
//
// A diagram that does not parse is logged as a console error, which fails
// the book's browser check (xtask/check_pages.py) along with the unrendered
// block itself.
(() => {
    const dark = ['coal', 'navy', 'ayu'];
    const html = document.documentElement.classList;
    const isDark = () => dark.some((t) => html.contains(t));
    const wasDark = isDark();

    mermaid.initialize({
        startOnLoad: false,
        theme: wasDark ? 'dark' : 'default',
        securityLevel: 'strict',
        // Scale a diagram down to the text column rather than overflow it;
        // the diagrams are drawn narrow enough that their text stays legible
        // (the browser check measures it).
        flowchart: { useMaxWidth: true },
        // Narrower lifelines than mermaid's (150 px apart by 50): five
        // participants then fit the column at close to their drawn size.
        sequence: { useMaxWidth: true, width: 110, actorMargin: 24, noteMargin: 6 },
    });
    // mermaid replaces a block's text with its drawing (or an error picture):
    // keep the source, for the browser check to say which diagram failed.
    for (const block of document.querySelectorAll('pre.mermaid')) {
        block.dataset.source = block.textContent;
    }
    mermaid
        .run({ querySelector: 'pre.mermaid' })
        .catch((e) => console.error('mermaid: a diagram did not render:', e && e.message ? e.message : e));

    // mermaid draws once, in one theme: redraw by reloading when the reader
    // switches between a light and a dark theme.
    for (const button of document.querySelectorAll('[id^="mdbook-theme-"]')) {
        button.addEventListener('click', () => {
            setTimeout(() => {
                if (isDark() !== wasDark) window.location.reload();
            }, 0);
        });
    }
})();
