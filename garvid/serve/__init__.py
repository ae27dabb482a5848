"""``garvid serve``: the web page over garvid's pipeline (gradio).

``settings`` checks how the server is exposed (no gradio import, so the CLI refuses a bad
binding before anything loads); ``workspace`` holds one browser session's video, objects,
``VideoSession`` and files; ``models`` the process-wide models and the lock model work takes;
``page`` builds the gradio Blocks and launches them.
"""
