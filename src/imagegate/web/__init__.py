"""The web console's static files (``static/``): plain ES modules and one stylesheet, no build."""
