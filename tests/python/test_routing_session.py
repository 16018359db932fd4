"""Unit tests of the routing part of the Python API: Session and tokens (plain, HmacSigner,
signer callables, tampering).

Every test passes `now_ns` explicitly: nothing here depends on the wall clock.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re

import pytest

from routing_helpers import MS

import replikit
from replikit import Lsn, Session


# --------------------------------------------------------------------------- Session and tokens

TOKEN_CHARS = re.compile(r"^[0-9A-Za-z._-]+$")

KEY = b"0123456789abcdef-test-key"


def hmac_callable(key: bytes = KEY):
    return lambda payload: hmac.new(key, payload, hashlib.sha256).digest()


class TestSession:
    def test_defaults_and_constructor(self):
        s = Session()
        assert s.write_lsn == Lsn(0) and s.read_lsn == Lsn(0) and s.untracked_write_ns is None
        s = Session(write_lsn="0/10", read_lsn=5)
        assert s.write_lsn == Lsn(0x10) and s.read_lsn == Lsn(5)
        assert s.causal_lsn() == Lsn(0x10)
        assert "0/10" in repr(s)

    def test_record_write_observe_merge(self):
        s = Session()
        s.record_write("0/100", now_ns=5)
        s.record_write("0/50", now_ns=6)  # older commits never lower it
        assert s.write_lsn == Lsn("0/100") and s.untracked_write_ns is None
        s.record_write(None, now_ns=7 * MS)
        assert s.untracked_write_ns == 7 * MS and s.write_lsn == Lsn("0/100")
        s.record_write(now_ns=6 * MS)  # an older unknown write does not move the window back
        assert s.untracked_write_ns == 7 * MS
        s.observe("0/80")
        s.observe("0/70")
        assert s.read_lsn == Lsn("0/80")
        assert s.causal_lsn() == Lsn("0/100")
        s.observe("0/300")
        assert s.causal_lsn() == Lsn("0/300")
        other = Session(write_lsn="0/400", read_lsn="0/10")
        other.record_write(None, now_ns=9 * MS)
        s.merge(other)
        assert (s.write_lsn, s.read_lsn, s.untracked_write_ns) == (Lsn("0/400"), Lsn("0/300"), 9 * MS)
        s.merge(Session(write_lsn="0/500").token())  # a token merges too
        assert s.write_lsn == Lsn("0/500")

    def test_copy_and_equality(self):
        s = Session(write_lsn=7, read_lsn=9)
        for c in (s.copy(), copy.copy(s), copy.deepcopy(s)):
            assert c == s and c is not s
            c.observe(100)
            assert c != s and s.read_lsn == Lsn(9)
        assert s != "not a session"
        with pytest.raises(TypeError):
            hash(s)  # mutable: not hashable

    def test_token_round_trip(self):
        s = Session(write_lsn="16/B374D848", read_lsn="16/B3700000")
        token = s.token()
        assert token == "1.16b374d848.16b3700000.x"
        assert Session.from_token(token) == s
        s.record_write(None, now_ns=1_234_567_890)
        back = Session.from_token(s.token())
        # The unknown-write time travels in whole milliseconds, rounded up (the window never ends early).
        assert back.untracked_write_ns == 1_235 * MS
        assert (back.write_lsn, back.read_lsn) == (s.write_lsn, s.read_lsn)
        big = Session(write_lsn=2**64 - 1, read_lsn=2**64 - 1)
        big.record_write(None, now_ns=2**63 - 1)
        for tok in (big.token(), big.token(signer=replikit.HmacSigner(KEY)) if hasattr(replikit, "HmacSigner") else big.token()):
            assert len(tok) <= 128 and TOKEN_CHARS.match(tok)

    @pytest.mark.skipif(not hasattr(replikit, "HmacSigner"), reason="built without OpenSSL")
    def test_signed_tokens(self):
        signer = replikit.HmacSigner(KEY)
        assert isinstance(signer, replikit.TokenSigner)
        s = Session(write_lsn="0/1234", read_lsn="0/99")
        token = s.token(signer=signer)
        payload, mac = token.rsplit(".", 1)
        assert payload == s.token()
        # The MAC is HMAC-SHA256 of the payload, truncated to 128 bits, base64url unpadded.
        expected = base64.urlsafe_b64encode(
            hmac.new(KEY, payload.encode(), hashlib.sha256).digest()[:16]).rstrip(b"=").decode()
        assert mac == expected
        assert TOKEN_CHARS.match(token)
        assert Session.from_token(token, signer=signer) == s
        # Another key, no key, or an unsigned token where one is expected: refused.
        with pytest.raises(replikit.TokenError) as info:
            Session.from_token(token, signer=replikit.HmacSigner(b"another key, 16+ bytes"))
        assert info.value.argument == "token"
        with pytest.raises(replikit.TokenError):
            Session.from_token(token)
        with pytest.raises(replikit.TokenError):
            Session.from_token(s.token(), signer=signer)
        # Merge verifies too.
        m = Session()
        m.merge(token, signer=signer)
        assert m == s
        with pytest.raises(replikit.TokenError) as info:
            m.merge(token)
        assert info.value.argument == "other"

    @pytest.mark.skipif(not hasattr(replikit, "HmacSigner"), reason="built without OpenSSL")
    def test_tampered_tokens_are_refused(self):
        signer = replikit.HmacSigner(KEY)
        s = Session(write_lsn="3/1234ABCD", read_lsn="2/99")
        s.record_write(None, now_ns=77 * MS)
        token = s.token(signer=signer)
        alphabet = "0123456789abcdefx.ABCXYZ-_"
        tried = 0
        for i, ch in enumerate(token):
            for repl in alphabet:
                if repl == ch:
                    continue
                tampered = token[:i] + repl + token[i + 1:]
                tried += 1
                with pytest.raises(replikit.TokenError):
                    Session.from_token(tampered, signer=signer)
        for cut in range(len(token)):
            with pytest.raises(replikit.TokenError):
                Session.from_token(token[:cut], signer=signer)
        with pytest.raises(replikit.TokenError):
            Session.from_token(token + "0", signer=signer)
        assert tried > 500

    def test_callable_signer(self):
        seen = []

        def signer(payload):
            assert isinstance(payload, bytes)
            seen.append(payload)
            return hmac.new(KEY, payload, hashlib.sha256).digest()

        s = Session(write_lsn="0/1234")
        token = s.token(signer=signer)
        assert seen == [s.token().encode()]
        assert Session.from_token(token, signer=signer) == s
        if hasattr(replikit, "HmacSigner"):
            # HmacSigner and a Python hmac callable with the same key are interchangeable.
            assert token == s.token(signer=replikit.HmacSigner(KEY))
            assert Session.from_token(token, signer=replikit.HmacSigner(KEY)) == s
        with pytest.raises(replikit.TokenError):
            Session.from_token(token, signer=hmac_callable(b"a different key!!"))

    def test_signer_exceptions_propagate(self):
        class Boom(Exception):
            pass

        def signer(payload):
            raise Boom("key store unavailable")

        with pytest.raises(Boom):
            Session().token(signer=signer)
        with pytest.raises(Boom):
            Session.from_token("1.0.0.x.AAAAAAAAAAAAAAAAAAAAAA", signer=signer)
