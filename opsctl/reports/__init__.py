"""The reports: the monthly O&M report, the quarterly inspection report, the issue
optimisation plan, the daily summary and the scheduled Excel exports.

Each report has one function that collects its data from the store into a typed structure,
and renderers (Jinja2 templates in ``report_templates/``, openpyxl for XLSX) that turn the
structure into HTML, XLSX or Markdown without querying the store.
"""
