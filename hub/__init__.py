"""The IOM hub web app: pages and a JSON API where alerts arrive and work gets done.

Vendored styles: hub/static/govuk (govuk-frontend 6.6.0, MIT; see LICENSE.txt there).
"""
