"""``WWW-Authenticate`` challenges (RFC 9110 §11.6.1; Docker token spec, "How to authenticate").

One header may carry several challenges (``Bearer realm="…",service="reg", Basic realm="x"``),
and several headers are one list (httpx joins them with ``, ``). The grammar is read by a scanner
that moves forward on every step, so a 64 KiB header costs linear time: a regex with nested
optional parts took 26 s of CPU on one. Bearer is preferred, else Basic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: RFC 9110 §5.6.2 ``tchar``.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SPACE = " \t"
#: Parameters kept per challenge, and challenges per header: more is not a registry's doing.
_MAX_PARAMS = 16
_MAX_CHALLENGES = 16
#: Scopes taken from one challenge.
MAX_SCOPES = 16


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split()[:MAX_SCOPES])


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip(self, chars: str) -> None:
        text, at = self.text, self.at
        while at < len(text) and text[at] in chars:
            at += 1
        self.at = at

    def token(self) -> str:
        start, text = self.at, self.text
        while self.at < len(text) and text[self.at] in _TCHAR:
            self.at += 1
        return text[start : self.at]

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def quoted(self) -> str:
        """A quoted-string after its opening quote; its escapes undone."""
        text, out = self.text, []
        while self.at < len(text):
            char = text[self.at]
            self.at += 1
            if char == '"':
                break
            if char == "\\" and self.at < len(text):
                char = text[self.at]
                self.at += 1
            out.append(char)
        return "".join(out)

    def value(self) -> str:
        if self.peek() == '"':
            self.at += 1
            return self.quoted()
        start, text = self.at, self.text
        while self.at < len(text) and text[self.at] not in ", \t":
            self.at += 1
        return text[start : self.at]


def parse_challenges(header: str | None) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value, in order."""
    found: list[Challenge] = []
    if not header:
        return found
    scan = _Scanner(header)
    while scan.at < len(header) and len(found) <= _MAX_CHALLENGES:
        scan.skip(_SPACE + ",")
        start = scan.at
        name = scan.token()
        if not name:  # not a token: step over the character, whatever it is
            scan.at = start + 1
            continue
        scan.skip(_SPACE)
        if scan.peek() == "=" and found:  # an auth-param of the current challenge
            scan.at += 1
            scan.skip(_SPACE)
            value = scan.value()
            if len(found[-1].params) < _MAX_PARAMS:
                found[-1].params.setdefault(name.lower(), value)
        elif scan.peek() == "=":  # a parameter before any scheme: not a challenge
            scan.at += 1
            scan.value()
        else:
            found.append(Challenge(name.lower(), {}))
    return found[:_MAX_CHALLENGES]


def parse_challenge(header: str | None) -> Challenge | None:
    """The challenge to answer: the Bearer one if there is one, else Basic, else the first."""
    challenges = parse_challenges(header)
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return challenges[0] if challenges else None
