"""Recognition on top of the runtime: the enrolment gallery (SQLite embedded, PostgreSQL + pgvector for
fleets, local replicas), face quality, enrolment, gallery searches, the open-set decision ("who is this, or
unknown?", raw or AS-norm scores) and the camera loop (``watch.py``: sources, tracker, per-track identity,
events to files, the gallery, MQTT).

Torch-free like the runtime it builds on (numpy, OpenCV, sqlite3): it runs on the device. It imports only
the runtime, serving and the common ground.
"""
