"""A real RTSP server for the tests: GStreamer's gst-rtsp-server streaming a video file as H.264.

Run with the system Python that has GStreamer's introspection bindings (Debian: python3-gi and
gir1.2-gst-rtsp-server-1.0), not the project's environment:

    /usr/bin/python3 tests/servers/rtsp_server.py PORT VIDEO [--loop]

Every client session plays the file from its start, in real time (the pipeline is paced by its clock);
with --loop the file repeats. Prints "ready" once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, video = sys.argv[1], sys.argv[2]
    loop_file = "--loop" in sys.argv[3:]
    Gst.init(None)
    source = (f"multifilesrc location={video} loop=true" if loop_file else f"filesrc location={video}")
    launch = (f"( {source} ! qtdemux ! decodebin ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast "
              f"key-int-max=10 bitrate=2000 ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)
    server.get_mount_points().add_factory("/clip", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
