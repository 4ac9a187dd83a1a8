#!/usr/bin/env python3
"""Writes the seed corpus into fuzz/corpus/<target>/seed-*.

The byte formats are described in README.md; the tables below (IPS, JUNK,
USER_CMDS, CONSOLE_CMDS, CLIENT_CMDS) must match the ones in
fuzz_targets/protocol.rs and fuzz_targets/client.rs, since the inputs refer to
their entries by index.

Run from anywhere: python3 fuzz/make_corpus.py
Existing seed-* files are replaced; other corpus entries are left alone.
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def u16(n):
    assert 0 <= n < 65536, n
    return struct.pack("<H", n)


def b(x):
    return x.encode("utf-8") if isinstance(x, str) else bytes(x)


def s8(x):
    x = b(x)
    assert len(x) < 256, len(x)
    return bytes([len(x)]) + x


def s16(x):
    x = b(x)
    return u16(len(x)) + x


def jdump(obj):
    """Like the core's encoders (Python's json.dumps defaults) plus '\\n'."""
    return (json.dumps(obj) + "\n").encode()


# ── protocol ────────────────────────────────────────────────────────────────

IPS = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "127.0.0.1",
    "::ffff:10.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "192.168.1.22",
    "2001:db8::1",
    "::ffff:10.0.0.3",
]
JUNK = [
    b"{",
    b"[1]",
    b"\xff\xfe",
    b'{"type": "ping"}',
    b'{"type": 5}',
    b'{"type": "message"}',
    b'{"type": "message", "text": 5}',
    b'{"username": 5}',
    b'{"password": "x"}',
    b"",
    b"   ",
    b"null",
    b'{"type": "message", "text": "   "}',
    b"hello",
    b'{"username": "alice", "password": 1}',
    b'{"username": null}',
    b"\r",
    b'{"type": "message", "text": "hi", "type": "x"}',
]
USER_CMDS = ["/users", "/quit", "/exit", "/q", "/help", "/QUIT", "/pm", "/frob", "/pm  ", "/Users extra",
             "/me waves", "/me  ", "/ME dances"]
CONSOLE_CMDS = ["/kick", "/ban", "/unban", "/users", "/stats", "/bans", "/quit", "/help", "",
                "/KICK", "/Ban", "/frob", "/exit", "/q", "<long>"]

# Header bits.
PASSWORD, EXEMPT_LOOPBACK, RATE_OFF, BIG_LINES, MALFORMED_3, BAN_10_0_0_3, SHORT_IDLE = 1, 2, 4, 8, 16, 32, 64


class P:
    """Builds a `protocol` input. Connections are numbered in the order they
    were opened (refused ones included), as the target does."""

    def __init__(self, header=0):
        self.out = bytearray([header])

    def _(self, *parts):
        for p in parts:
            self.out += p if isinstance(p, (bytes, bytearray)) else bytes(p)
        return self

    def connect(self, ip, port=0):
        return self._([0, IPS.index(ip), port])

    def input(self, conn, data, splits=()):
        return self._([1, conn], s16(data), [len(splits)], list(splits))

    def login(self, conn, name, pw="", crlf=False):
        return self._([2, conn, 0 | (0x80 if crlf else 0)], s8(name), s8(pw))

    def chat(self, conn, text, crlf=False):
        return self._([2, conn, 1 | (0x80 if crlf else 0)], s8(text))

    def junk(self, conn, line):
        return self._([2, conn, 2, JUNK.index(line)])

    def raw(self, conn, data):
        return self._([2, conn, 3], s8(data))

    def typed(self, conn, kind, text):
        return self._([2, conn, 4], s8(kind), s8(text))

    def pm(self, conn, to, text):
        return self._([2, conn, 5], s8(to), s8(text))

    def cmd(self, conn, c):
        return self._([2, conn, 6, USER_CMDS.index(c)])

    def repeat(self, conn, n, text):
        return self._([2, conn, 7, n], s8(text))

    def disconnect(self, conn, slow=False):
        return self._([3, conn, 1 if slow else 0])

    def advance(self, ms):
        return self._([4], u16(ms // 8))

    def console(self, cmd, arg=""):
        return self._([5, CONSOLE_CMDS.index(cmd)], s8(arg))

    def shutdown(self):
        return self._([6])

    def bulk(self, conn, byte, n, newline=True):
        return self._([7, conn, ord(byte)], u16(n), [1 if newline else 0])

    def slow_reader(self, conn):
        return self._([8, conn])

    def bytes(self):
        return bytes(self.out)


def login_line(name, pw=""):
    return jdump({"username": name, "password": pw})


def chat_line(text):
    return jdump({"type": "message", "text": text})


def protocol_seeds():
    s = {}
    s["login_ok_and_join"] = (
        P().connect("10.0.0.1").connect("10.0.0.3", 2).connect("10.0.0.2", 1)
        .login(0, "alice").login(2, " bob ").chat(0, "hello").chat(2, "hi alice", crlf=True)
        .login(1, "carol").cmd(1, "/users").cmd(0, "/quit").disconnect(2)
    )
    p = P()
    for i, name in enumerate(["", "   ", "a" * 25, "al ice", "\u00e5lice", "alice.b"]):
        p.connect("10.0.0.1").login(i, name)
    n = 6
    for line in [b'{"password": ""}', b'{"username": null}', b'{"username": 5}', b"hello", b'["alice"]']:
        p.connect("10.0.0.1").raw(n, line)
        n += 1
    p.connect("10.0.0.1").raw(n, b'{"username": "\xff\xfe"}')
    p.connect("10.0.0.1").login(n + 1, "Al_ice-9xxxxxxxxxxxxxxxx")
    s["invalid_usernames"] = p
    s["duplicate_names"] = (
        P().connect("10.0.0.1").login(0, "alice").advance(1000).connect("10.0.0.2").login(1, "ALICE")
        .connect("10.0.0.2", 1).login(2, "alice").disconnect(0).connect("10.0.0.2", 2).login(3, "ALICE")
    )
    s["password_right_and_wrong"] = (
        P(PASSWORD).connect("10.0.0.1").login(0, "alice", "secret").connect("10.0.0.2").login(1, "bob", "Secret")
        .connect("10.0.0.2", 1).raw(2, b'{"username": "bob"}').chat(0, "still here")
    )
    p = P(PASSWORD)
    for i in range(3):
        p.advance(1000).connect("10.0.0.1", i).login(i, "mallory", "guess")
    p.connect("10.0.0.1", 9).login(3, "mallory", "secret")
    p.connect("::ffff:10.0.0.1").login(4, "mallory", "secret")
    p.connect("10.0.0.2").login(5, "mallory", "secret").advance(61000).connect("10.0.0.1").login(6, "m2", "secret")
    s["failed_login_limit"] = p
    s["client_commands"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob")
        .cmd(0, "/users").pm(0, "BOB", "psst").pm(0, "nobody", "hi").cmd(0, "/pm").cmd(1, "/help")
        .cmd(1, "/frob").cmd(1, "/Users extra").cmd(0, "/me waves").cmd(0, "/me  ").chat(0, "  /pm   bob   spaced  ").typed(0, "ping", "")
        .cmd(1, "/QUIT")
    )
    s["bytes_after_login_are_chat"] = (
        P().connect("10.0.0.2").connect("10.0.0.1").login(1, "bob")
        .input(0, login_line("alice") + chat_line("one") + chat_line("two")[:9], [40, 130])
        .input(0, chat_line("two")[9:] + b"{\"type\": \"message\", \"text\": \"thr")
    )
    s["rate_limit_and_flood_kick"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob")
        .repeat(0, 4, "spam").advance(1000).repeat(0, 3, "ok").chat(0, "too fast").advance(200).chat(1, "bye")
    )
    s["flood_warnings_expire"] = (
        P().connect("10.0.0.1").login(0, "alice").repeat(0, 4, "a").advance(1000).advance(9000)
        .repeat(0, 4, "b").advance(1000).repeat(0, 3, "c")
    )
    s["rate_limit_off"] = P(RATE_OFF).connect("10.0.0.1").connect("10.0.0.2").login(0, "a").login(1, "b").repeat(0, 15, "x")
    p = P(MALFORMED_3).connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob")
    for j in JUNK[:2]:
        p.junk(0, j)
    p.chat(0, "reset")
    for j in JUNK[2:6]:
        p.junk(0, j)
    s["malformed_lines"] = p
    p = P().connect("10.0.0.1").login(0, "alice")
    for j in JUNK:
        p.junk(0, j)
    s["malformed_ten_in_a_row"] = p
    s["overlong_lines"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob")
        .bulk(0, "a", 256, True).bulk(1, "b", 300, False).connect("10.0.0.3").bulk(2, "c", 257, True)
        .connect("10.0.0.1").input(3, b"x" * 256 + b"\r\n")
    )
    s["text_length_limit"] = (
        P(BIG_LINES).connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob")
        .input(0, chat_line("y" * 2001)).bulk(1, "z", 300, True)
        .console("<long>").console("", "hello from the console")
    )
    s["console_kick"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob")
        .console("/kick", "BOB").console("/kick", "bob").console("/kick").console("/KICK", "alice")
    )
    s["console_ban_user_and_ip"] = (
        P().connect("10.0.0.1").connect("::ffff:10.0.0.1").connect("10.0.0.2").connect("10.0.0.3")
        .login(0, "alice").login(2, "bob").login(3, "carol").console("/ban", "alice").console("/bans")
        .connect("10.0.0.1").console("/ban", "10.0.0.2").console("/ban", "10.0.0.2").console("/ban", "::ffff:10.0.0.3")
        .console("/ban", "nobody").console("/ban").connect("10.0.0.2")
    )
    s["console_unban"] = (
        P(BAN_10_0_0_3).connect("10.0.0.3").console("/bans").console("/unban", "10.0.0.3").connect("::ffff:10.0.0.3")
        .login(1, "carol").console("/unban", "10.0.0.3").console("/unban", "not-an-ip").console("/unban")
        .console("/Ban", "carol").console("/unban", "::ffff:10.0.0.3")
    )
    s["console_commands"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice")
        .console("/users").console("/stats").console("/bans").console("/help").console("/frob")
        .console("", "hi all").console("", "   ").advance(60000).console("/stats")
    )
    s["auth_timeout"] = (
        P().connect("10.0.0.1").advance(5000).connect("10.0.0.2").advance(5000).login(1, "late").advance(5000)
    )
    s["idle_timeout"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").login(1, "bob").advance(100000)
        .input(0, b"").advance(20000).advance(100000).advance(100000)
    )
    s["idle_before_login_deadline"] = (
        P(SHORT_IDLE).connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").advance(4000).chat(0, "hi")
        .advance(4000).login(1, "bob").advance(2000).advance(4000).advance(4000)
    )
    s["console_quit_shuts_down"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").console("/quit")
        .connect("10.0.0.1").console("/users").shutdown()
    )
    s["shutdown_by_signal"] = P().connect("10.0.0.1").login(0, "alice").connect("10.0.0.2").shutdown().shutdown()
    p = P(EXEMPT_LOOPBACK)
    for i in range(9):
        p.connect("127.0.0.1", i)
    p.disconnect(0).connect("::1")
    s["max_clients"] = p
    p = P()
    for i in range(4):
        p.connect("10.0.0.1", i)
    p.connect("::ffff:10.0.0.1").connect("127.0.0.1").connect("127.0.0.1", 1).connect("::ffff:127.0.0.1")
    p.connect("::1").disconnect(1).connect("10.0.0.1", 9)
    s["max_per_address"] = p
    s["disconnects"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").login(0, "alice").disconnect(0).disconnect(0)
        .disconnect(1, slow=True).disconnect(255).input(0, b"late\n")
    )
    s["slow_reader"] = (
        P().connect("10.0.0.1").connect("10.0.0.2").connect("10.0.0.3").login(0, "alice").login(1, "bob")
        .login(2, "carol").slow_reader(1).chat(0, "hello").chat(0, "again").slow_reader(2)
        .console("/kick", "carol").slow_reader(0).console("", "x").cmd(0, "/users")
    )
    return {k: v.bytes() for k, v in s.items()}


# ── client ──────────────────────────────────────────────────────────────────

CLIENT_CMDS = ["/quit", "/pm bob hi", "/pm bob", "/help", "hello", "<long>", "", "/users",
               "/PM Bob  hey ", "/exit", "/q", "  hi  ", "/me waves", "/me", "/clear"]
C_PASSWORD, C_ASK, C_RATE_OFF, C_SMALL_LINES = 1, 2, 4, 8
(AUTH_REQUEST, AUTH_REQUEST_PW, AUTH_OK, AUTH_FAIL, MESSAGE, PM, SYSTEM, RAW, PING, OVERSIZED) = range(10)


class C:
    def __init__(self, header=0):
        self.out = bytearray([header])

    def _(self, *parts):
        for p in parts:
            self.out += p if isinstance(p, (bytes, bytearray)) else bytes(p)
        return self

    def server_bytes(self, data, splits=()):
        return self._([0], s16(data), [len(splits)], list(splits))

    def line(self, kind, a="", b_=""):
        return self._([1, kind], s8(a), s8(b_))

    def user(self, text):
        return self._([2], s8(text))

    def password(self, pw):
        return self._([3], s8(pw))

    def quit(self):
        return self._([4])

    def advance(self, ms):
        return self._([5], u16(ms // 8))

    def disconnect(self):
        return self._([6])

    def cmd(self, c):
        return self._([7, CLIENT_CMDS.index(c)])

    def interrupt(self):
        return self._([8])

    def bytes(self):
        return bytes(self.out)


def client_seeds():
    s = {}
    s["normal_login"] = (
        C().line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub").user("hello").line(MESSAGE, "bob", "hi")
        .line(PM, "bob", "psst").line(SYSTEM, "carol joined").cmd("/pm bob hi").cmd("/pm bob").cmd("/help").cmd("/me waves").cmd("/me").cmd("/clear")
        .quit().line(SYSTEM, "Goodbye!").disconnect()
    )
    s["server_decides_name"] = C().line(AUTH_REQUEST).line(AUTH_OK, "Alice", "Hub").cmd("/users").disconnect()
    s["password_required_asked"] = (
        C(C_ASK).line(AUTH_REQUEST_PW).advance(30000).password("secret").line(AUTH_OK, "alice", "Hub").cmd("hello")
    )
    s["password_configured"] = C(C_PASSWORD).line(AUTH_REQUEST_PW).line(AUTH_OK, "alice", "Hub").cmd("  hi  ")
    s["password_not_known"] = C().line(AUTH_REQUEST_PW).user("after")
    s["auth_fail"] = C().line(AUTH_REQUEST).line(AUTH_FAIL, "Username already taken.").disconnect()
    s["refused_at_connect"] = C().line(AUTH_FAIL, "Server is full").disconnect()
    s["login_timeout"] = C().advance(9000).advance(1000).user("late")
    s["result_timeout"] = C().line(AUTH_REQUEST).advance(10000)
    s["early_lines_sent_after_login"] = (
        C().user("one").user("two").line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub")
    )
    s["pacing"] = (
        C().line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub").user("1").user("2").user("3").user("4").user("5")
        .advance(500).advance(500).user("6").quit().advance(1000).disconnect()
    )
    s["quit_before_login_with_queue"] = C().user("queued").quit().line(AUTH_REQUEST).line(AUTH_OK, "alice", "")
    s["quit_while_password_asked"] = C(C_ASK).line(AUTH_REQUEST_PW).user("x").quit()
    s["interrupt_during_login"] = C().user("queued").line(AUTH_REQUEST).interrupt().line(AUTH_OK, "alice", "Hub")
    s["interrupt_while_chatting"] = C().line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub").user("last").interrupt()
    s["oversized_server_line"] = C(C_SMALL_LINES).line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub").line(OVERSIZED)
    s["oversized_during_login"] = C(C_SMALL_LINES).line(OVERSIZED)
    s["nonsense_during_login"] = C().line(RAW, "garbage").line(AUTH_REQUEST)
    s["unexpected_during_login"] = C().line(AUTH_REQUEST).line(MESSAGE, "bob", "hi")
    s["overlong_text_not_sent"] = C(C_RATE_OFF).line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub").cmd("<long>").cmd("hello")
    s["chunked_server_bytes"] = C().server_bytes(
        jdump({"type": "auth_request", "ts": "12:00", "needs_password": False})
        + jdump({"type": "auth_ok", "ts": "12:00", "username": "alice", "server_name": "Hub"})
        + b'{"type": "ping"}\r\n{"type": "system", "ts": "12:00", "text": "x"}\n[1]\n\xff\n{"type": "mes',
        [30, 90, 200],
    ).server_bytes(b'sage", "user": "b", "text": "t"}\n')
    s["leaving_then_server_lines"] = (
        C().line(AUTH_REQUEST).line(AUTH_OK, "alice", "Hub").user("bye").quit().line(MESSAGE, "bob", "late")
        .line(AUTH_FAIL, "odd").line(PING).disconnect()
    )
    return {k: v.bytes() for k, v in s.items()}


# ── frame ───────────────────────────────────────────────────────────────────


def frame(max_line, stream, offsets=()):
    return bytes([max_line, len(offsets)]) + bytes(offsets) + stream


def frame_seeds():
    return {
        "lines_and_cr": frame(100, b"one\r\ntwo\n\nthree", [20, 128]),
        "at_limit": frame(4, b"abcd\nabcde\nmore\n", [64]),
        "crlf_at_limit": frame(4, b"abcd\r\nab\r", [100, 200]),
        "split_in_crlf": frame(8, b"12345678\r\n1234567\r\n", [115, 116, 117]),
        "zero_limit": frame(0, b"\n\na\nab\n", [0, 0, 255]),
        "no_newline": frame(16, b"x" * 40, [32, 64, 96]),
        "empty_chunks": frame(10, b"hello\nworld\n", [0, 0, 128, 128, 255, 255]),
        "json_lines": frame(255, login_line("alice") + chat_line("hi") + b"partial", [17, 60, 61]),
    }


# ── web ─────────────────────────────────────────────────────────────────────


def ws_frame(opcode, payload, mask=b"\x37\xfa\x21\x3d", fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def web(mode, stream, offsets=()):
    return bytes([mode, len(offsets)]) + bytes(offsets) + stream


def web_seeds():
    login = login_line("alice")
    return {
        "get_page": web(2, b"GET / HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n", [9, 200]),
        "head_404": web(2, b"HEAD /../etc/passwd?x HTTP/1.1\r\n\r\n"),
        "many_headers": web(0, b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 70 + b"\r\n", [128]),
        "slow": web(0, b"GET / HT"),
        "bad_origin": web(0, b"GET /ws HTTP/1.1\r\nHost: h:1\r\nOrigin: http://evil\r\nUpgrade: websocket\r\n"
                           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
        "login_in_frames": web(1, ws_frame(2, login[:5], fin=False) + ws_frame(9, b"p")
                               + ws_frame(0, login[5:]) + ws_frame(2, chat_line("hi")), [180, 220]),
        "close": web(1, ws_frame(8, b"\x03\xe8")),
        "unmasked": web(1, b"\x82\x01x"),
        "text": web(1, ws_frame(1, b"{}")),
    }


# ── bans ────────────────────────────────────────────────────────────────────


def bans_seeds():
    return {
        "lantalk_file": b'[\n  "10.0.0.2",\n  "192.168.1.22",\n  "::1"\n]',
        "empty_list": b"[]",
        "whitespace": b"  \n",
        "mapped_and_spaces": b'[" ::ffff:10.0.0.9 ", "10.0.0.9", "fe80::1", "2001:db8::"]',
        "not_a_string": b'["1.2.3.4", 1]',
        "not_an_ip": b'["not-an-ip"]',
        "object": b'{"a": 1}',
        "escapes": b'["\\u0031.2.3.4", "1.2.3.\\u0034"]',
        "unterminated": b'["1.2.3.4"',
    }


# ── server_lines ────────────────────────────────────────────────────────────


def server_lines_seeds():
    return {
        "chat": b'{"type": "message", "text": "  hi  "}',
        "chat_escapes": b'{"type": "message", "text": "h\\u00e9llo \\"q\\" \\\\ \\n\\t\\u0001 \\ud83d\\udc4b"}',
        "login": b'{"username": " Bob ", "password": "x", "extra": 1}',
        "login_null_password": b'{"username": "bob", "password": null}',
        "auth_request": b'{"type": "auth_request", "ts": "14:02", "needs_password": true}',
        "auth_ok": b'{"type": "auth_ok", "ts": "14:02", "username": "Bob", "server_name": "Alice"}',
        "auth_fail": b'{"type": "auth_fail", "ts": "14:02", "reason": "Wrong password."}',
        "pm": b'{"type": "pm", "ts": "14:02", "from_user": "bob", "text": "psst"}',
        "system": b'{"type": "system", "ts": "14:02", "text": "x"}',
        "unknown_type": b'{"type": "ping", "text": 5}',
        "wrong_types": b'{"type": "message", "text": 5, "username": []}',
        "duplicate_keys": b'{"type": "message", "text": "a", "text": "b"}',
        "invalid_utf8": b'{"type": "message", "text": "\xff"}',
        "lone_surrogate": b'{"type": "message", "text": "\\ud800"}',
        "unicode_space": b'{"type": "message", "text": "\\u2003x\\u00a0"}',
        "py_space": b'{"type": "message", "text": "\\u001e\\u001f"}',
        "offer": b'{"type": "auth_request", "ts": "12:00", "needs_password": false, '
                 b'"secure": {"v": 1, "suites": ["Noise_XX_25519_ChaChaPoly_BLAKE2s", 5], "pake": "SPAKE2"}}',
        "offer_kdf": b'{"type": "auth_request", "ts": "12:00", "needs_password": true, "secure": {"v": 1, '
                     b'"suites": [], "pake": "SPAKE2", "kdf": {"alg": "argon2id", '
                     b'"salt": "AQEBAQEBAQEBAQEBAQEBAQ==", "m": 8, "t": 1, "p": 1}}}',
        "pake": b'{"type": "pake", "msg": "AAEC", "proof": ""}',
        "login_pake": b'{"username": "bob", "pake": "AAECAw=="}',
    }


# ── visible ─────────────────────────────────────────────────────────────────


def visible_seeds():
    return {
        "plain": b"hello",
        "escapes": b"\x1b[2J\x1b]0;PWNED\x07",
        "cr_lf_tab": b"text\roverwrite\nsecond line\ttab",
        "bidi": "abc\u202efed \u2066iso\u2069 \u2028sep".encode(),
        "c1_del": "\u009b2J \u0085 \x7f del".encode(),
        "unicode": "\u65e5\u672c \U0001f44d\U0001f3fd \u241b <U+202E>".encode(),
        "invalid_utf8": b"\xff\xfe\x1b",
    }


# ── rooms ───────────────────────────────────────────────────────────────────
# An op byte, a member (0..2), a length byte, then that many bytes: see
# fuzz_targets/rooms.rs for the ops.


def rooms_op(op, who, payload):
    data = payload.encode()
    return bytes([op, who, len(data)]) + data


def rooms_seeds():
    r = rooms_op
    return {
        "join_say_page": r(1, 0, "#a") + r(0, 0, "hello") + r(1, 1, "#a")
        + r(0, 1, "hi") + r(3, 1, "x") + r(5, 0, "zz"),
        "keys": r(1, 0, "#c k3y") + r(1, 1, "#c k3y") + r(1, 1, "#c wrong")
        + r(4, 0, "") + r(7, 0, "/rooms"),
        "raw_history": r(2, 2, '{"type": "history", "room": "#lobby", "after": 1}')
        + r(5, 0, "abcd"),
        "invite_only": r(1, 0, "#b-2") + r(1, 0, "on") + r(1, 0, "bo")
        + r(6, 0, '{"type": "message", "text": "/join #a"}'),
        "console": r(1, 0, "#a") + r(7, 0, "/kick bo #a") + r(7, 0, "/topic #a hi"),
    }


# ── transfer ────────────────────────────────────────────────────────────────
# Two bytes: the file's length in KiB (little-endian); then op bytes, each
# with the argument bytes it reads: see fuzz_targets/transfer.rs.


def transfer_seeds():
    kib = lambda n: bytes([n & 0xFF, n >> 8])
    return {
        # Upload, download, list.
        "send_get": kib(2560) + bytes([0, 2, 4]),
        # An empty file, a private one, everything at once.
        "empty_private": kib(0) + bytes([1, 3]),
        # The network cuts the side connection, then the download again.
        "cut_resume": kib(1100) + bytes([0, 6, 0, 2, 6, 0, 2]),
        # A tampered upload, then a tampered download.
        "tamper": kib(1500) + bytes([8, 0, 0, 2, 8, 2]),
        # The disks fail (server full; the receiver full), time passes.
        "disks": kib(300) + bytes([7, 0, 0, 0, 7, 2, 0, 0, 2, 9, 200, 2]),
        # The file changes while sent; cancels; Ctrl-C.
        "change_cancel": kib(2100) + bytes([10, 33, 0, 5, 0, 5, 1, 11, 1, 2]),
    }


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.remove(os.path.join(d, f))
    total = 0
    for name, data in seeds.items():
        with open(os.path.join(d, f"seed-{name}"), "wb") as fh:
            fh.write(data)
        total += len(data)
    print(f"{target:13} {len(seeds):3} seeds {total:6} bytes")


def main():
    write("protocol", protocol_seeds())
    write("client", client_seeds())
    write("frame", frame_seeds())
    write("bans", bans_seeds())
    write("server_lines", server_lines_seeds())
    write("visible", visible_seeds())
    write("rooms", rooms_seeds())
    write("transfer", transfer_seeds())
    write("web", web_seeds())


if __name__ == "__main__":
    main()
