"""Keep edgekd off the network. OpenVINO and NNCF ship a telemetry client that would
send usage events to an analytics host; `disable_telemetry` switches it off for this
process, and the bench runner (a child process, or a device over ssh) calls it too through
the OpenVINO runtime module, which is where it lives.
"""

from edgekd.runtimes.openvino import disable_telemetry

__all__ = ["disable_telemetry"]
