#!/usr/bin/env python3
"""Using the styletransfer element from a Python application through GObject introspection.

    GST_PLUGIN_PATH=target/release /usr/bin/python3 examples/python_gi.py MODEL [FRAMES]

Needs Debian's python3-gi and gir1.2-gstreamer-1.0 (scripts/setup.sh installs them).
Prints the provider that ran and the frame count.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    model = sys.argv[1]
    frames = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers={frames} ! video/x-raw,width=96,height=64 ! videoconvert ! "
        "styletransfer name=st provider=cpu ! fakesink name=out"
    )
    st = pipeline.get_by_name("st")
    st.set_property("model", model)
    st.set_property("strength", 0.8)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    processed = st.get_property("frames-processed")
    provider = st.get_property("active-provider")
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        err = msg.parse_error()[0].message if msg else "timeout"
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"provider={provider} frames={processed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
