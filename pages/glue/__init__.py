"""The Streamlit glue the pages share (not pages themselves: those are the scripts in
pages/ above this package).

- page_table: the pages as plain data (app.py, docs/screenshots.py and the tests read it);
- state, sidebar: the sidebar and the choices every page reads (data set, models, classes);
- caches: every cache shared between sessions, with one key rule;
- draw, css: how pages draw pictures, charts and tables, and every style the app adds;
- choose: widgets that choose pictures;
- training: the one training driver (Train and Compare);
- links, lessons: shareable links, and lessons in presentation mode;
- classroom, class_questions: a live class (roles, following, the sidebar's class lines)
  and its questions (asking, answering, the tally);
- compare_tabs, style_panel, uses: parts of the Compare, Style and Uses pages;
- server: once per server process (threads, garbage collection).
"""
