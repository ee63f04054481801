"""Recognition on top of the runtime: the enrolment gallery (SQLite), face quality, enrolment, search
and the open-set decision ("who is this, or unknown?").

Torch-free like the runtime it builds on (numpy, OpenCV, sqlite3): it runs on the device. It imports
only the runtime and the common ground.
"""
