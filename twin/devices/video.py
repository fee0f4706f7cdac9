"""Video kinds: IP cameras streaming to a network video recorder."""

from __future__ import annotations

from pydantic import Field

from twin.devices.base import DeviceKind, Params


class CameraParams(Params):
    nvr: str = Field(description="the recorder (device or group) pulling this camera's stream")
    bitrate_mbps: float = Field(default=4.0, gt=0)


class Camera(DeviceKind):
    name = "camera"
    summary = "IP camera: RTSP stream, web admin and telnet on many cheap models"
    services = ("http", "rtsp")
    role = "camera"
    params = CameraParams
    device_refs = ("nvr",)
    default_credentials = (("admin", "admin"), ("admin", "12345"), ("root", "vizxv"))


class Nvr(DeviceKind):
    name = "nvr"
    summary = "network video recorder: pulls camera streams"
    services = ("http", "https")
    role = "server"
