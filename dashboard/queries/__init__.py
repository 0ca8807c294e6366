"""Read-only queries of the dashboard, returning pandas DataFrames: one module per page.

- :mod:`~wattbench.dashboard.queries.common`: what the others share (filters, the
  configuration key, the energy badge, configuration labels);
- :mod:`~wattbench.dashboard.queries.leaderboard`: the groups, one group's runs in pandas,
  configurations and ranking;
- :mod:`~wattbench.dashboard.queries.aggregated`: the same configurations and the sidebar's
  facets, grouped by the database (the default views of big databases);
- :mod:`~wattbench.dashboard.queries.escalation`: escalation sweeps and their points;
- :mod:`~wattbench.dashboard.queries.settings_sweep`: settings sweeps, their points, front
  and optimum;
- :mod:`~wattbench.dashboard.queries.run_detail`: one run, its trials, traces and latencies;
- :mod:`~wattbench.dashboard.queries.compare`: pooled trial samples, headline power.

Nothing here imports Streamlit: the app layer (:mod:`wattbench.dashboard.ui`) wraps these
functions in ``st.cache_data``, and the tests call them directly.

The database is opened **read-only** (:func:`wattbench.results_db.readonly.open_readonly`):
SQLite through a ``mode=ro`` URI plus ``PRAGMA query_only``, PostgreSQL with
``default_transaction_read_only`` set on every connection. The dashboard never creates
a schema, never migrates and never writes; an empty or missing database is a state
the app explains, not an error.
"""
