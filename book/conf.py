"""Sphinx configuration of the course site (``make site`` stages this folder; see scripts/build_site.py).

Sphinx + myst-nb + sphinx-book-theme (the Jupyter Book 1 stack). The notebooks arrive executed
(quick mode, cached by the build script), so myst-nb never executes them here. Everything a page
loads is in ``_static``: MathJax 3 and one shared plotly.js (both copied in by the build script).
"""

from __future__ import annotations

project = "lossviz"
author = "lossviz developers"
copyright = "lossviz developers, MIT licence"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["lossviz.css"]

# --- notebooks: rendered as executed by the build script, never re-executed by Sphinx
nb_execution_mode = "off"
nb_output_stderr = "remove"
nb_ipywidgets_js = {}  # no require.js / widget manager from a CDN: live widgets need a kernel
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

# --- math without a network: MathJax 3 bundled in _static/mathjax (relative to _static)
mathjax_path = "mathjax/tex-mml-chtml.js"

# --- API reference from the docstrings (numpydoc "conventions" sections)
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False

# --- theme: sidebar by track (captions of the index's toctrees), prev/next, launch buttons
html_theme = "sphinx_book_theme"
html_title = "lossviz: the geometry of deep learning, one paper at a time"
html_sourcelink_suffix = ""  # the download button serves the .ipynb itself
html_last_updated_fmt = None
html_theme_options = {
    "repository_url": "https://github.com/lossviz/lossviz",
    "repository_branch": "main",
    "path_to_docs": "notebooks",
    "use_repository_button": True,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": False,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
        "notebook_interface": "jupyterlab",
    },
}


def _plotly_once(app, pagename, templatename, context, doctree):
    """Load the shared ``_static/plotly.min.js`` (synchronously) on pages that draw a plotly figure."""
    if "Plotly.newPlot" in context.get("body", ""):
        app.add_js_file("plotly.min.js", priority=100)  # this page only; no defer: inline plots use it


def setup(app):
    app.connect("html-page-context", _plotly_once)
