"""What an empty (or not yet created) database shows: how to produce a first result."""

from __future__ import annotations

import streamlit as st

from wattbench.results_db.readonly import Database


def render(db: Database) -> None:
    st.title("wattbench")
    where = "does not exist yet" if db.state == "missing" else "has no runs yet"
    st.info(f"The database `{db.display_url}` {where}. Record a first result:")
    st.code(
        "\n".join(
            [
                "# a first benchmark, stored in the default database (SQLite, your data dir)",
                "bash scripts/quickstart.sh",
                "",
                "# or by hand, into this database",
                "pip install 'wattbench[onnxruntime]'",
                f"wattbench run --suite mobilenet_v2 --adapter onnxruntime --db '{db.url}'",
                "",
                "# a lab: devices upload to the central store this dashboard reads",
                "wattbench upload --to http://central:8000 --token $WATTBENCH_TOKEN",
            ]
        ),
        language="bash",
    )
    st.caption(
        "The dashboard only reads the database; new runs appear within 30 s (reload the page)."
    )
