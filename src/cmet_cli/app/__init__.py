"""``cmet app``: the edit from a local web page. ``workbench`` does the work through the library (``runner``,
``pipeline.Editor``, ``preview``) without gradio; ``page`` builds the Gradio page over it (the extra
``pip install 'cmet-cli[app]'``). Neither is imported by the CLI until ``cmet app`` runs."""
