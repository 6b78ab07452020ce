"""The web side: the Dash app, its pages and the REST API, built by `create_dash_app`."""
