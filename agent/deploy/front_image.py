"""The front's image, built locally from the host's Debian `haproxy` package (no pulls).

The image holds `/usr/sbin/haproxy` and the shared libraries `ldd` names, nothing
else (FROM scratch). Its tag carries the HAProxy version, so upgrading the Debian
package gives a new image at the next deploy or `make images`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from typing import Any

IMAGE_REPOSITORY = "seamless/front-haproxy"
HAPROXY = "/usr/sbin/haproxy"
_DOCKERFILE = b"""FROM scratch
COPY rootfs/ /
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/sbin/haproxy", "-db", "-f", "/etc/seamless-front/haproxy.cfg"]
"""


class FrontImageError(RuntimeError):
    """The front's image cannot be made here; the message says what to install."""


def haproxy_binary() -> str:
    path = shutil.which("haproxy") or (HAPROXY if os.path.exists(HAPROXY) else None)
    if path is None:
        raise FrontImageError("HAProxy is not installed on this host: `apt-get install haproxy`"
                              " (scripts/ensure-docker.sh does it)")
    return path


def haproxy_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"version (\S+)", out)
    if not match:
        raise FrontImageError(f"cannot read the HAProxy version from {out[:80]!r}")
    return match.group(1).replace("+", "_")


def image_tag(binary: str | None = None) -> str:
    return f"{IMAGE_REPOSITORY}:{haproxy_version(binary or haproxy_binary())}"


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split("=>")
        path = (parts[1] if len(parts) == 2 else parts[0]).strip().split(" ")[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def _context(binary: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_DOCKERFILE))
        for path in [binary, *_libraries(binary)]:
            # Stored under the path the loader asks for, with the symlink's target's bytes.
            tar.add(os.path.realpath(path), arcname="rootfs" + path)
        for folder in ("rootfs/etc/seamless-front", "rootfs/run/front", "rootfs/tmp"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    buf.seek(0)
    return buf


def ensure_image(client: Any) -> str:
    """The front image's tag, built now from the host's HAProxy if the engine lacks it."""
    import docker.errors

    binary = haproxy_binary()
    tag = image_tag(binary)
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(fileobj=_context(binary), custom_context=True, tag=tag, rm=True,
                        labels={"io.seamless.front-image": "1"})
    return tag


def main() -> None:
    """`python -m agent.deploy.front_image`: build the image (make images)."""
    import docker

    print(ensure_image(docker.from_env()))


if __name__ == "__main__":
    main()
