"""Small Sphinx fixes for the built book (loaded from _config.yml: sphinx.local_extensions).

* sphinx-thebe 0.3.1 under Jupyter Book 1.0.4 adds its inline configuration script twice
  to every page, which throws "Identifier 'THEBE_JS_URL' has already been declared" in the
  browser; we keep the first copy of every identical script.
* The theme logs an error when no colour mode is set; the book defaults to light.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for js in context.get("script_files", []):
        # the two copies differ only in filename None vs "" (both mean "inline script")
        key = (getattr(js, "filename", str(js)) or "", tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"][:] = unique  # in place: later handlers (MathJax) append to this list


def setup(app):
    app.config.html_context.setdefault("default_mode", "light")
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
