#!/usr/bin/env python3
"""Debian's svcrack (sipvicious 0.3.3), unchanged, except that it answers the MD5 challenge.

svcrack reads the first WWW-/Proxy-Authenticate header of a 401/407 and knows only MD5 and MD5-sess: on
Parkway's first challenge (SHA-256, RFC 8760 §2.4 order) it prints "Unknown algorithm: sha-256" and dies
(UnboundLocalError) before it sends a single password. Parkway also offers MD5 (unless the domain is in
[auth] md5_off_domains), and an attacker picks the challenge he can answer. This wrapper imports the installed
sipvicious package and replaces only the function that picks the challenge header (svhelper.getAuthHeader as
imported into svcrack) with one that prefers the MD5 challenge; everything else, the guessing loop, the
request format, nonce counting and the result table, is the installed svcrack's own main().

    svcrack_md5.py [svcrack options] target       (same command line as svcrack)
"""
import os
import re
import shutil
import sys


def _sipvicious_dir() -> str:
    exe = shutil.which("svcrack") or shutil.which("sipvicious_svcrack")
    if exe:
        d = os.path.dirname(os.path.realpath(exe))
        if os.path.isdir(os.path.join(d, "sipvicious")):
            return d
    return "/usr/share/sipvicious"


sys.path.insert(0, _sipvicious_dir())
from sipvicious import svcrack  # noqa: E402

_original = svcrack.getAuthHeader


def md5_challenge_first(pkt):
    values = re.findall(r"^(?:www|proxy)-authenticate:[ \t]*(.+?)\r?$", pkt, re.I | re.M)
    for v in values:
        if re.search(r"algorithm=\"?md5\"?(?:[,\s]|$)", v, re.I):
            return v
    return _original(pkt)


svcrack.getAuthHeader = md5_challenge_first

if __name__ == "__main__":
    sys.argv[0] = "svcrack"
    sys.exit(svcrack.main())
