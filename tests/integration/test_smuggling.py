"""test_smuggling.py - differential request-smuggling tests. A raw Python
backend records the exact bytes ringfront forwards; for every hostile
request the client either gets an error and a close while the backend sees
nothing, or the backend sees exactly the well-framed requests the client
meant (checked by the strict parser in harness.py) - never an extra one.
The response side feeds ringfront broken responses and checks that the
client gets a clean 502 and a stream that stays in sync."""
import json
import os
import time

from harness import (Conn, RawBackend, Ringfront, StrictError, check, config,
                     read_responses, strict_parse_all, wait_until)

H = b"Host: x\r\n"
AFTER = b"GET /after-bad HTTP/1.1\r\nHost: x\r\n\r\n"   # must never be forwarded
SETTLE = 0.05       # a connection with nothing more to send stays open this long
VERBOSE = bool(os.environ.get("RF_TEST_VERBOSE"))
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def post(fields, body=b"", target=b"/p", version=b"HTTP/1.1"):
    return b"POST " + target + b" " + version + b"\r\n" + H + fields + b"\r\n" + body


def chunked(body_wire):
    return post(b"Transfer-Encoding: chunked\r\n", body_wire)


def get(target=b"/g", fields=b"", version=b"HTTP/1.1"):
    return b"GET " + target + b" " + version + b"\r\n" + H + fields + b"\r\n"


def want(target, body=b"", host=None, method=None):
    return {"target": target, "body": body, "host": host, "method": method}


class Case:
    """reject: statuses the client may get (then a close, backend sees
    nothing); accept: the requests the backend must see, in order. When
    both are given either outcome passes. leak: the error is found in the
    body, so the backend may have seen a prefix of the one request, on a
    link that ringfront must then close."""

    def __init__(self, name, raw, reject=None, accept=None, leak=False, pipeline_after=None):
        self.name = name
        self.raw = raw
        self.reject = reject
        self.accept = accept
        self.leak = leak
        # a valid request pipelined behind a rejected one must not be forwarded
        self.pipeline_after = (reject is not None and accept is None) if pipeline_after is None \
            else pipeline_after


R400 = (400,)
CASES = [
    # ---- Content-Length and Transfer-Encoding together or repeated ----
    Case("cl_then_te", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_then_cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), R400),
    Case("cl_zero_and_te", post(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), R400),
    Case("cl_differing", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), R400),
    Case("cl_list_differing", post(b"Content-Length: 5, 6\r\n", b"hello!"), R400),
    Case("cl_identical_twice", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
         R400, [want(b"/p", b"hello")]),
    Case("cl_identical_list", post(b"Content-Length: 5, 5\r\n", b"hello"), R400, [want(b"/p", b"hello")]),
    Case("cl_plus", post(b"Content-Length: +5\r\n", b"hello"), R400),
    Case("cl_negative", post(b"Content-Length: -1\r\n", b""), R400),
    Case("cl_hex", post(b"Content-Length: 0x5\r\n", b"hello"), R400),
    Case("cl_two_numbers", post(b"Content-Length: 5 5\r\n", b"hello"), R400),
    Case("cl_empty", post(b"Content-Length:\r\n", b""), R400),
    Case("cl_overflow", post(b"Content-Length: 99999999999999999999999\r\n", b"x"), R400),
    Case("cl_in_http10_with_te", post(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", version=b"HTTP/1.0"), R400),
    # ---- Transfer-Encoding obfuscations ----
    Case("te_chunked_identity", post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"), R400 + (501,)),
    Case("te_identity_chunked", post(b"Transfer-Encoding: identity, chunked\r\n", b"0\r\n\r\n"), R400 + (501,)),
    Case("te_xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), R400 + (501,)),
    Case("te_chunked_twice_list", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_chunked_two_fields", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                       b"0\r\n\r\n"), R400),
    Case("te_gzip_chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), (400, 501)),
    Case("te_chunked_gzip", post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), (400, 501)),
    Case("te_quoted", post(b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n"), (400, 501)),
    Case("te_param", post(b"Transfer-Encoding: chunked;q=1\r\n", b"0\r\n\r\n"), (400, 501)),
    Case("te_empty_element", post(b"Transfer-Encoding: ,chunked\r\n", b"0\r\n\r\n"), (400, 501)),
    Case("te_space_before_colon", post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_tab_before_colon", post(b"Transfer-Encoding\t: chunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_obs_fold", post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_obs_fold_tab", post(b"X-A: a\r\n\tTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_vtab_value", post(b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n"), R400),
    Case("te_leading_space_line", b"POST /p HTTP/1.1\r\n Transfer-Encoding: chunked\r\n" + H + b"\r\n0\r\n\r\n",
         R400),
    Case("te_tab_value_valid", post(b"Transfer-Encoding: \tchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
         accept=[want(b"/p", b"hello")]),
    Case("te_no_space_valid", post(b"Transfer-Encoding:chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
         accept=[want(b"/p", b"hello")]),
    Case("te_uppercase_valid", post(b"Transfer-Encoding: CHUNKED\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
         accept=[want(b"/p", b"hello")]),
    Case("te_trailing_ows_valid", post(b"Transfer-Encoding: chunked \t\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
         accept=[want(b"/p", b"hello")]),
    # underscore: not Transfer-Encoding; the Content-Length framing rules
    Case("te_underscore_with_cl", post(b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n",
                                       b"hello"), R400, [want(b"/p", b"hello")]),
    Case("te_underscore_alone", post(b"Transfer_Encoding: chunked\r\n", b"") , R400, [want(b"/p", b"")]),
    # ---- chunk framing ----
    Case("chunk_size_overflow", chunked(b"ffffffffffffffffff\r\n"), R400, leak=True),
    Case("chunk_size_2_63", chunked(b"8000000000000000\r\nx"), R400, leak=True),
    Case("chunk_bad_hex", chunked(b"5g\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_0x_prefix", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_space_before_size", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_empty_size", chunked(b"\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_data_too_long", chunked(b"3\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_missing_crlf", chunked(b"5\r\nhello0\r\n\r\n"), R400, leak=True),
    Case("chunk_bare_lf_size", chunked(b"5\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_bare_lf_data", chunked(b"5\r\nhello\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_bare_cr_ext", chunked(b"5;a=b\rX\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_ext_empty_name", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_ext_ctl", chunked(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), R400, leak=True),
    Case("chunk_ext_unterminated_quote", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'), R400, leak=True),
    Case("chunk_trailer_bad", chunked(b"0\r\nBad Trailer: x\r\n\r\n"), R400, leak=True),
    Case("chunk_trailer_obs_fold", chunked(b"0\r\nX-T: a\r\n b\r\n\r\n"), R400, leak=True),
    Case("chunk_ext_valid", chunked(b'5;foo=bar\r\nhello\r\n6 ; q="a \\" b";x\r\n world\r\n0;end\r\n\r\n'),
         accept=[want(b"/p", b"hello world")]),
    Case("chunk_upper_hex_and_zeros", chunked(b"00A\r\n0123456789\r\n0000\r\n\r\n"),
         accept=[want(b"/p", b"0123456789")]),
    Case("chunk_trailers_valid", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\nContent-Length: 999\r\n\r\n"),
         accept=[want(b"/p", b"hello")]),
    Case("chunk_body_is_a_request", chunked(b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)),
         accept=[want(b"/p", SMUGGLED)]),
    # ---- bare CR / LF, NUL and control bytes, bad field names ----
    Case("bare_lf_request_line", b"GET /g HTTP/1.1\n" + H + b"\r\n", R400),
    Case("bare_lf_field", b"GET /g HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", R400),
    Case("bare_lf_end", b"GET /g HTTP/1.1\r\nHost: x\r\n\n", R400, pipeline_after=False),
    Case("bare_cr_field", b"GET /g HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", R400),
    Case("bare_cr_value", get(fields=b"X-A: a\rb\r\n"), R400),
    Case("nul_in_value", get(fields=b"X-A: a\x00b\r\n"), R400),
    Case("nul_in_name", get(fields=b"X-\x00A: b\r\n"), R400),
    Case("ctl_in_value", get(fields=b"X-A: a\x01b\r\n"), R400),
    Case("esc_in_value", get(fields=b"X-A: a\x1b[0mb\r\n"), R400),
    Case("del_in_value", get(fields=b"X-A: a\x7fb\r\n"), R400),
    Case("space_in_name", get(fields=b"Bad Name: v\r\n"), R400),
    Case("space_in_cl_name", post(b"Content Length: 5\r\n", b"hello"), R400),
    Case("at_in_name", get(fields=b"X@Y: v\r\n"), R400),
    Case("empty_name", get(fields=b": v\r\n"), R400),
    Case("high_byte_in_name", get(fields=b"X-\xc3\xa9: v\r\n"), R400),
    Case("obs_text_in_value_valid", get(fields=b"X-A: caf\xc3\xa9\r\n"), accept=[want(b"/g")]),
    Case("no_colon", get(fields=b"X-A v\r\n"), R400),
    # ---- request line ----
    Case("http09", b"GET /g\r\n\r\n", R400),
    Case("http12", get(version=b"HTTP/1.2"), (400, 505)),
    Case("http20", get(version=b"HTTP/2.0"), (400, 505)),
    Case("http3_short", get(version=b"HTTP/3"), (400, 505)),
    Case("http_lowercase", get(version=b"http/1.1"), (400, 505)),
    Case("http_1_10", get(version=b"HTTP/1.10"), (400, 505)),
    Case("http_01_1", get(version=b"HTTP/01.1"), (400, 505)),
    Case("double_space", b"GET  /g HTTP/1.1\r\n" + H + b"\r\n", R400),
    Case("tab_separator", b"GET\t/g HTTP/1.1\r\n" + H + b"\r\n", R400),
    Case("trailing_space", b"GET /g HTTP/1.1 \r\n" + H + b"\r\n", R400),
    Case("space_in_target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", R400),
    Case("nul_in_target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", R400),
    Case("high_byte_in_target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", R400),
    Case("nul_in_method", b"G\x00T /g HTTP/1.1\r\n" + H + b"\r\n", R400),
    Case("leading_empty_lines", b"\r\n\r\n" + get(b"/lead"), R400, [want(b"/lead")]),
    # ---- Host and absolute-form ----
    Case("two_hosts", b"GET /g HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", R400),
    Case("two_hosts_same", b"GET /g HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", R400),
    Case("host_list", b"GET /g HTTP/1.1\r\nHost: a, b\r\n\r\n", R400),
    Case("host_space", b"GET /g HTTP/1.1\r\nHost: a b\r\n\r\n", R400),
    Case("host_userinfo", b"GET /g HTTP/1.1\r\nHost: u@a\r\n\r\n", R400),
    Case("host_path", b"GET /g HTTP/1.1\r\nHost: a/b\r\n\r\n", R400),
    Case("no_host_11", b"GET /g HTTP/1.1\r\nX-A: b\r\n\r\n", R400),
    Case("absolute_other_host", b"GET http://auth.example/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
         accept=[want(b"/p?q=1", host=b"auth.example")]),
    Case("absolute_port", b"GET http://auth.example:8080/p HTTP/1.1\r\nHost: other.example\r\n\r\n",
         accept=[want(b"/p", host=b"auth.example:8080")]),
    Case("absolute_no_path", b"GET http://auth.example HTTP/1.1\r\nHost: other.example\r\n\r\n",
         accept=[want(b"/", host=b"auth.example")]),
    Case("absolute_https_upper", b"GET HTTPS://auth.example/p HTTP/1.1\r\nHost: o\r\n\r\n",
         R400, [want(b"/p", host=b"auth.example")]),
    Case("absolute_userinfo", b"GET http://u@evil.example/p HTTP/1.1\r\nHost: o\r\n\r\n", R400),
    Case("absolute_query_no_path", b"GET http://auth.example?x=1 HTTP/1.1\r\nHost: o\r\n\r\n", R400),
    Case("absolute_ftp", b"GET ftp://auth.example/p HTTP/1.1\r\nHost: o\r\n\r\n", R400),
    Case("absolute_bad_ipv6", b"GET http://[::1/p HTTP/1.1\r\nHost: o\r\n\r\n", R400),
    # ---- bodies and pipelining ----
    Case("get_body_then_pipelined", b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + get(b"/b"),
         accept=[want(b"/a", b"hello"), want(b"/b")]),
    Case("get_body_is_a_request", b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
         % (len(SMUGGLED), SMUGGLED), accept=[want(b"/a", SMUGGLED)]),
    Case("pipelined_three", get(b"/1") + post(b"Content-Length: 3\r\n", b"abc", b"/2") + get(b"/3"),
         accept=[want(b"/1"), want(b"/2", b"abc"), want(b"/3")]),
    Case("pipelined_after_chunked", chunked(b"3\r\nabc\r\n0\r\n\r\n") + get(b"/next"),
         accept=[want(b"/p", b"abc"), want(b"/next")]),
    Case("h2c_upgrade_refused", get(b"/up", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                                    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n") + get(b"/next"),
         accept=[want(b"/up"), want(b"/next")]),
    Case("connection_names_cl", post(b"Connection: Content-Length\r\nContent-Length: 5\r\n", b"hello"),
         R400, [want(b"/p", b"hello")]),
    Case("connection_names_te", post(b"Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n",
                                     b"5\r\nhello\r\n0\r\n\r\n"), R400, [want(b"/p", b"hello")]),
    Case("connection_names_host", get(b"/g", b"Connection: Host\r\n"), R400, [want(b"/g", host=b"x")]),
    Case("expect_100_with_body", post(b"Expect: 100-continue\r\nContent-Length: 5\r\n", b"hello"),
         accept=[want(b"/p", b"hello")]),
    Case("lowercase_method", b"get /g HTTP/1.1\r\n" + H + b"\r\n", R400 + (405, 501),
         [want(b"/g", method=b"get")]),
]


def _leftover(data):
    """The bytes after the last whole request in <data> (b"" when it ends
    on a request boundary), or the bytes themselves when a strict parser
    refuses them."""
    try:
        return strict_parse_all(data)[1]
    except StrictError:
        return data


def partial_links_left_open(backend, timeout=2.0):
    """Backend links holding part of a request that ringfront has not
    closed within <timeout> (it found the error in the body: the link must
    not carry anything else). Asked while ringfront still runs."""
    def open_partial():
        with backend.lock:
            conns = [(bc, bytes(bc.data)) for bc in backend.conns]
        return [bc for bc, data in conns if not bc.eof and _leftover(data)]
    wait_until(lambda: not open_partial(), timeout)
    return set(open_partial())


def is_proxy_error(resp, statuses):
    if resp.status not in statuses:
        return False
    try:
        body = json.loads(resp.body)
    except ValueError:
        return False
    return body.get("code") == resp.status


def judge(case, resps, eof, news, left_open=()):
    """None when the outcome is allowed, else a description. <news>: every
    (BackendConn, bytes) the case's backend received; <left_open>: its
    links ringfront left open with a partial request."""
    parsed = []
    for bc, data in news:
        try:
            reqs, left = strict_parse_all(data)
        except StrictError as e:
            return "backend got bytes a strict parser refuses (%s): %r" % (e, data[:300])
        parsed.append((bc, reqs, left))
    nreqs = sum(len(r) for _, r, _ in parsed)
    # rejected by ringfront
    if resps and case.reject and resps[0].status in case.reject:
        if not is_proxy_error(resps[0], case.reject):
            return "error response without JSON body: %r" % resps[0]
        if len(resps) != 1:
            return "more than one response after a rejection: %r" % resps
        if not eof:
            return "connection not closed after %d" % resps[0].status
        if not news:
            return None
        if case.leak and len(news) == 1 and nreqs == 0:
            if news[0][0] not in left_open:
                return None     # a prefix of the one request on a link then closed
            return "backend link with a partial request was not closed"
        return "rejected with %d but the backend got %r" % (resps[0].status, [d[:200] for _, d in news])
    if not case.accept:
        return "expected %s, got %r (eof=%s), backend got %r" % (
            case.reject, resps[:2], eof, [d[:200] for _, d in news])
    # forwarded: exactly the requests the client meant, no more, no less
    if any(left for _, _, left in parsed):
        return "backend got a trailing partial request: %r" % [left[:200] for _, _, left in parsed]
    reqs = [r for _, rs, _ in parsed for r in rs]
    if len(reqs) != len(case.accept):
        return "backend got %d requests, client sent %d: %r" % (len(reqs), len(case.accept), reqs)
    if len(resps) != len(case.accept):
        return "client got %d responses for %d requests: %r" % (len(resps), len(case.accept), resps)
    for w, resp in zip(case.accept, resps):
        if resp.status != 200 or resp.body != b"ok:" + w["target"]:
            return "response out of step: want ok:%r, got %r" % (w["target"], resp)
    by_target = {r.target: r for r in reqs}
    for w in case.accept:
        r = by_target.get(w["target"])
        if r is None:
            return "backend never got %r: %r" % (w["target"], reqs)
        if r.body != w["body"]:
            return "body of %r: want %r got %r" % (w["target"], w["body"], r.body)
        if w["body"] == b"" and r.framing == "chunked":
            return "bodiless request forwarded chunked: %r" % r.raw
        if w["host"] is not None and r.header_all("host") != [w["host"]]:
            return "Host of %r: want %r got %r" % (w["target"], w["host"], r.header_all("host"))
        if w["method"] is not None and r.method != w["method"]:
            return "method: want %r got %r" % (w["method"], r.method)
    return None


def run_case(case):
    """One case on its own ringfront and backend, so nothing of another
    case can be mixed into it however late it travels: the client part is
    judged while ringfront runs; then ringfront stops and every byte it
    ever sent the backend and the client is complete (both see EOF), with
    no time window to miss or misattribute late bytes. Returns the failure
    or None."""
    backend = RawBackend()
    rf = Ringfront(config([backend.addr], server="max_header_size = 16k\nshutdown_timeout = 2s"))
    raw = case.raw + (AFTER if case.pipeline_after else b"")
    c = Conn(rf.port, timeout=3)
    try:
        try:
            c.send(raw)
            want_n = len(case.accept) if case.accept else 1
            resps, eof = read_responses(c, want_n, lull=1.5)
            if not eof and resps and resps[-1].status >= 400 and \
                    (resps[-1].header("connection") or "").lower() == "close":
                eof = c.is_closed(wait=1.5)
            elif not eof:
                eof = c.is_closed(wait=SETTLE)
        except OSError as e:
            return "client socket error %r" % e
        left_open = partial_links_left_open(backend)
        if eof:
            c.close()           # ringfront may linger, draining our input
        rf.stop()               # raises on a sanitizer report or a bad exit
        # nothing may follow the expected responses: ringfront is gone, so
        # whatever it sent is here up to the EOF
        extra = b""
        if not eof:
            try:
                extra = c.read_until_close()
            except OSError:
                pass
        if not wait_until(lambda: all(bc.eof for bc in list(backend.conns)), 5.0):
            return "a backend link stayed open after ringfront exited"
        news = backend.since({})
        if any("handler" in e for bc in backend.conns for e in bc.errors):
            return "backend handler error: %r" % [bc.errors for bc in backend.conns]
        why = judge(case, resps, eof, news, left_open)
        if not why and extra:
            why = "extra bytes after the responses: %r" % extra[:200]
        if VERBOSE:
            print("  %-28s %s backend=%r%s" % (case.name, [getattr(r, "status", r) for r in resps],
                                              [d[:60] for _, d in news], " FAIL " + why if why else ""))
        return why
    finally:
        c.close()
        backend.close()


def test_request_smuggling_differential():
    failures = []
    for case in CASES:
        why = run_case(case)
        if why:
            failures.append("%s: %s" % (case.name, why))
    check(not failures, "%d of %d cases failed:\n  " % (len(failures), len(CASES)) + "\n  ".join(failures))


# ---------------------------------------------------------------------------
# the response side
# ---------------------------------------------------------------------------

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"

BAD_RESPONSES = {
    "status_two_digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_four_digits": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_no_space": b"HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok",
    "status_999": b"HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
    "status_bad_protocol": b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_http2": b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_leading_space": b" HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "not_http": b"hello there\r\n\r\n",
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "two_cls": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
    "cl_list_differing": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nokk",
    "cl_negative": b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
    "cl_plus": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "te_chunked_twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "te_in_http10": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "header_over_8k": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\nok",
    "too_many_headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
                        + b"Content-Length: 2\r\n\r\nok",
    "nul_in_header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "space_before_colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "bare_cr_header": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "unasked_101": b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: evil\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


def bad_response_backend(bc):
    """/bad/NAME gets BAD_RESPONSES[NAME] (followed, where the stream goes
    on, by a poisoned extra response); everything else gets ok:PATH."""
    while True:
        try:
            req = bc.read_request(timeout=30)
        except StrictError:
            bc.close()
            return
        if req is None:
            return
        path = req.target.decode()
        if path.startswith("/bad/"):
            bc.send(BAD_RESPONSES[path[5:]] + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
            continue        # keep the connection: reuse would be seen
        body = b"ok:" + req.target
        bc.send(GOOD % (len(body), body))


def test_bad_responses_502_and_stream_stays_in_sync():
    backend = RawBackend(bad_response_backend)
    rf = Ringfront(config([backend.addr]))
    failures = []
    for name in BAD_RESPONSES:
        c = Conn(rf.port, timeout=3)
        try:
            c.send(b"GET /bad/%s HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode())
            try:
                r = c.read_response()
            except (EOFError, OSError, ValueError) as e:
                failures.append("%s: no response (%r)" % (name, e))
                continue
            try:
                code = json.loads(r.body).get("code")
            except ValueError:
                code = None
            if r.status != 502 or r.header("Content-Type") != "application/json" or code != 502:
                failures.append("%s: want a JSON 502, got %r" % (name, r))
                continue
            # the same client connection still works, or was closed cleanly
            try:
                c.send(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\n")
                r2 = c.read_response()
                if r2.status != 200 or r2.body != b"ok:/good":
                    failures.append("%s: next response out of sync: %r" % (name, r2))
            except (EOFError, ConnectionResetError, BrokenPipeError):
                if c.buf:
                    failures.append("%s: garbage before close: %r" % (name, c.buf[:100]))
        finally:
            c.close()
        # the link that carried the bad response is closed, never reused
        target = b"/bad/" + name.encode()
        bad = [bc for bc in list(backend.conns) if any(rq.target == target for rq in bc.requests)]
        if len(bad) != 1:
            failures.append("%s: bad request seen on %d links" % (name, len(bad)))
        elif not wait_until(lambda: bad[0].eof, 2.0):
            failures.append("%s: link with a broken response kept open" % name)
        elif bad[0].requests[-1].target != target:
            failures.append("%s: broken link reused for %r" % (name, bad[0].requests[-1]))
    check(not failures, "%d of %d cases failed:\n  " % (len(failures), len(BAD_RESPONSES))
          + "\n  ".join(failures))
    # still serving
    c = Conn(rf.port)
    c.send(b"GET /final HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    check(r.status == 200 and r.body == b"ok:/final", r)
    c.close()
    rf.stop()


def broken_body_backend(bc):
    req = bc.read_request()
    if req is None:
        return
    if req.target == b"/badchunk":
        bc.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
    else:
        body = b"ok:" + req.target
        bc.send(GOOD % (len(body), body))
    respond_rest(bc)


def respond_rest(bc):
    while True:
        try:
            req = bc.read_request(timeout=30)
        except StrictError:
            return
        if req is None:
            return
        body = b"ok:" + req.target
        bc.send(GOOD % (len(body), body))


def test_bad_chunk_in_response_body_closes_client():
    """Broken framing found after the head was relayed: the client cannot
    get a 502 any more, so its connection must close - nothing after the
    good bytes, never the poisoned response behind them."""
    backend = RawBackend(broken_body_backend)
    rf = Ringfront(config([backend.addr]))
    c = Conn(rf.port, timeout=3)
    c.send(b"GET /badchunk HTTP/1.1\r\nHost: x\r\n\r\n")
    data = c.read_until_close()
    c.close()
    # the relayed head may or may not have left before the abort
    check(data == b"" or data.startswith(b"HTTP/1.1 200"), data[:200])
    check(b"POISON" not in data and b"zz" not in data, data)
    check(wait_until(lambda: backend.conns and backend.conns[0].eof, 2.0), "broken link kept open")
    c = Conn(rf.port, timeout=3)
    c.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    check(r.status == 200 and r.body == b"ok:/next", r)
    c.close()
    check(len(backend.conns) == 2 and len(backend.conns[0].requests) == 1, backend.conns)
    rf.stop()
