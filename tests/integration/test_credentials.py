"""Credential sources end to end (issue 3): every source against a local
server on loopback, with the local AWS endpoint checking that the temporary
credentials it issued sign each request and that their session token is sent
and signed. Refresh under load, malformed answers, expired tokens."""
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (AKID, ClosedPort, SECRET, Device, FakeAws, Gateway, Mosquitto, config,  # noqa
                     free_port, make_pki, wait_for)

TMP = PKI = BROKER = AWS = None
CONTAINER_TOKEN = "Bearer cmdgate-container-token"


setUpModule, tearDownModule = harness.module_world(
    globals(), "cmdgate-cred-", pki=True, aws_pki=True, container_token=CONTAINER_TOKEN, mtls=True)


def write(name, text, mode=0o600):
    p = os.path.join(TMP, f"{time.time_ns()}-{name}")
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def assert_no_secret(test, g):
    """None of the secrets and tokens the local endpoint issued or was given
    (static secret, session tokens, container bearer token, IMDS tokens)
    appears in g's log, whole or as the part after "Bearer "."""
    text = g.text()
    secrets = AWS.secrets()
    test.assertIn(SECRET, secrets)
    test.assertIn(CONTAINER_TOKEN, secrets)
    for s in secrets:
        for piece in [s] + [p for p in s.split() if len(p) >= 8]:
            test.assertNotIn(piece, text, f"a secret in {g.logpath}")
    test.assertNotIn("Signature=", text)


def make_foreign_client_cert(d):
    """A client certificate and key from a CA the provider does not know."""
    def run(*a):
        subprocess.run(a, check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=another CA", "-keyout", "other-ca.key", "-out", "other-ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=gw-thing",
        "-keyout", "other-client.key", "-out", "other-client.csr")
    run("openssl", "x509", "-req", "-in", "other-client.csr", "-CA", "other-ca.pem",
        "-CAkey", "other-ca.key", "-CAcreateserial", "-days", "2", "-out", "other-client.pem")
    return os.path.join(d, "other-client.pem"), os.path.join(d, "other-client.key")


class CredCase(unittest.TestCase):
    def setUp(self):
        AWS.reset()
        self.gws, self.devs = [], []

    def tearDown(self):
        for d in self.devs:
            d.close()
        for g in self.gws:
            rc = g.stop()
            self.assertEqual(rc, 0, g.text()[-2000:])

    def start(self, credentials, env=None, ready=True):
        g = Gateway(TMP, config(BROKER.port, AWS.url, credentials=credentials), env=env or {},
                    wait_ready=ready)
        self.gws.append(g)
        d = Device(BROKER.port)
        self.devs.append(d)
        return g, d

    def thing(self):
        return f"c{time.time_ns() % 10**12}"

    def accepted(self, dev, **kw):
        r, _ = dev.request(self.thing(), "c1", {"id": "x"}, **kw)
        self.assertEqual(r["status"], "accepted", r)
        return r

    def unavailable(self, dev):
        start = time.time()
        r, _ = dev.request(self.thing(), "c1", {"id": "y"})
        self.assertEqual(r["code"], "CredentialsUnavailable", r)
        self.assertIs(r["retryable"], True)
        self.assertLess(time.time() - start, 2.0)
        return r

    def signed_with_issued_token(self):
        h = AWS.calls()[-1]["headers"]
        self.assertTrue(h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIA"))
        self.assertIn("x-amz-security-token", h)
        self.assertIn(";x-amz-security-token,", h["authorization"])

    def no_secret_in_log(self, g):
        assert_no_secret(self, g)


class Static(CredCase):
    def test_secret_file_readable_by_owner_only(self):
        f = write("secret", SECRET + "\n")
        g, d = self.start(f'source = "static"; access_key_id = "{AKID}"; '
                          f'secret_access_key_file = "{f}";')
        self.accepted(d)
        self.assertIn("credentials from static", g.text())
        self.no_secret_in_log(g)

    def test_secret_file_readable_by_others_is_refused(self):
        f = write("secret", SECRET, 0o644)
        g, d = self.start(f'source = "static"; access_key_id = "{AKID}"; '
                          f'secret_access_key_file = "{f}";')
        self.unavailable(d)
        self.assertIn("readable by group or others", g.text())
        self.assertIn("chmod 600", g.text())
        # the operator fixes the mode; the gateway recovers by itself
        os.chmod(f, 0o600)
        self.assertTrue(wait_for(lambda: "credentials from static" in g.text(), 15))
        self.accepted(d)

    def test_systemd_credential_at_mode_0440_is_trusted(self):
        # LoadCredential= may hand the secret over as 0440 plus an ACL; only
        # the service can read $CREDENTIALS_DIRECTORY, so the mode is fine there.
        creds = os.path.join(TMP, f"{time.time_ns()}-credentials")
        os.mkdir(creds, 0o700)
        f = os.path.join(creds, "aws-secret")
        with open(f, "w") as fh:
            fh.write(SECRET + "\n")
        os.chmod(f, 0o440)
        g, d = self.start(f'source = "static"; access_key_id = "{AKID}"; '
                          f'secret_access_key_file = "{f}";',
                          env={"CREDENTIALS_DIRECTORY": creds})
        self.accepted(d)
        self.assertIn("credentials from static", g.text())
        self.assertNotIn("chmod 600", g.text())


class Profile(CredCase):
    FILE = ("# written by aws configure\n[default]\naws_access_key_id = AKIDWRONG\n"
            "aws_secret_access_key = wrong\n\n; the line-3 gateway\n[ line3 ]\n"
            f"  aws_access_key_id   = {AKID}  \naws_secret_access_key={SECRET}\n")

    def test_profile_named_in_config(self):
        f = write("credentials", self.FILE)
        g, d = self.start('source = "profile"; profile = "line3";',
                          env={"AWS_SHARED_CREDENTIALS_FILE": f})
        self.accepted(d)
        self.assertIn("credentials from profile", g.text())

    def test_profile_from_aws_profile(self):
        f = write("credentials", self.FILE)
        g, d = self.start('source = "profile";',
                          env={"AWS_SHARED_CREDENTIALS_FILE": f, "AWS_PROFILE": "line3"})
        self.accepted(d)

    def test_default_profile_is_used_otherwise(self):
        f = write("credentials", self.FILE)
        g, d = self.start('source = "profile";', env={"AWS_SHARED_CREDENTIALS_FILE": f})
        r, _ = d.request(self.thing(), "c1", {})
        self.assertEqual(r["code"], "UnrecognizedClientException")


class Container(CredCase):
    def env(self, **kw):
        e = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{AWS.url}/creds/container",
             "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN}
        e.update(kw)
        return e

    def test_full_uri_with_authorization_token(self):
        g, d = self.start('source = "container";', env=self.env())
        self.accepted(d)
        self.signed_with_issued_token()
        self.assertEqual(AWS.cred_calls()[0]["headers"]["authorization"], CONTAINER_TOKEN)
        self.no_secret_in_log(g)

    def test_authorization_token_file_wins(self):
        f = write("token", CONTAINER_TOKEN + "\n")
        g, d = self.start('source = "container";',
                          env=self.env(AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong",
                                       AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=f))
        self.accepted(d)

    def test_wrong_token_is_unavailable(self):
        g, d = self.start('source = "container";',
                          env=self.env(AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong"))
        self.unavailable(d)
        self.assertIn("HTTP 401", g.text())

    def test_plain_http_off_loopback_is_refused_without_a_connection(self):
        # 192.0.2.0/24 is TEST-NET-1: the rule refuses it before any I/O
        g, d = self.start('source = "container";',
                          env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://192.0.2.1/creds"})
        self.unavailable(d)
        self.assertIn("not https and not a loopback", g.text())

    def test_unreachable_source(self):
        closed = ClosedPort()
        g, d = self.start('source = "container";', env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{closed.port}/creds"})
        self.unavailable(d)
        self.assertIn("credentials unavailable", g.text())

    def test_malformed_answers(self):
        for kind in ("notjson", "missing", "badexp"):
            AWS.reset()
            AWS.control(creds={"malformed": kind})
            g, d = self.start('source = "container";', env=self.env())
            self.unavailable(d)
            self.assertIn("credentials unavailable", g.text())
            AWS.control(creds={"malformed": ""})
            # and it recovers once the source answers properly
            self.assertTrue(wait_for(lambda: "credentials from container" in g.text(), 15), kind)
            self.accepted(d)
            # one gateway at a time: they all subscribe to the same topics
            self.gws.remove(g)
            self.assertEqual(g.stop(), 0)

    def test_refreshed_before_expiry_without_a_failed_request(self):
        AWS.control(creds={"lifetime_s": 4})
        g, d = self.start('source = "container";', env=self.env())
        results = []
        end = time.time() + 9
        i = 0
        while time.time() < end:
            r, _ = d.request(f"steady-{i % 5}", "c1", {"id": i})
            results.append(r)
            i += 1
            time.sleep(0.05)
        bad = [r for r in results if r["status"] != "accepted"]
        self.assertEqual(bad, [])
        self.assertGreater(len(results), 50)
        keys = {c["headers"]["authorization"].split("Credential=")[1].split("/")[0]
                for c in AWS.calls()}
        self.assertGreaterEqual(len(keys), 3)  # issued at 0 s and refreshed at least twice
        self.assertGreaterEqual(len(AWS.cred_calls()), 3)

    def test_expired_token_triggers_one_refresh_and_one_resigned_call(self):
        g, d = self.start('source = "container";', env=self.env())
        self.accepted(d)
        AWS.control(creds={"expire_all": True})
        r = self.accepted(d)
        outcomes = [c["outcome"] for c in AWS.calls()]
        self.assertEqual(outcomes, ["started", "ExpiredTokenException", "started"])
        self.assertIn("expired early; refreshing", g.text())

    def test_fails_then_recovers_by_itself(self):
        AWS.control(creds={"fail": 2})
        g, d = self.start('source = "container";', env=self.env())
        self.unavailable(d)
        self.assertTrue(wait_for(lambda: "credentials from container" in g.text(), 15))
        self.accepted(d)


class Imds(CredCase):
    def test_imdsv2_token_then_role_then_credentials(self):
        g, d = self.start('source = "imds";', env={
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": AWS.url, "AWS_EC2_METADATA_DISABLED": "false"})
        self.accepted(d)
        self.signed_with_issued_token()
        paths = [c["path"] for c in AWS.cred_calls()]
        self.assertEqual(paths, ["/latest/meta-data/iam/security-credentials/",
                                 "/latest/meta-data/iam/security-credentials/cmdgate-role"])
        for c in AWS.cred_calls():
            self.assertIn("x-aws-ec2-metadata-token", c["headers"])
        self.no_secret_in_log(g)

    def test_disabled(self):
        g, d = self.start('source = "imds";', env={
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": AWS.url, "AWS_EC2_METADATA_DISABLED": "true"})
        self.unavailable(d)
        self.assertIn("disabled by AWS_EC2_METADATA_DISABLED", g.text())
        self.assertEqual(AWS.cred_calls(), [])


class Iot(CredCase):
    def conf(self, thing="gw-thing", alias="cmdgate-alias", cert=True):
        c = (f'source = "iot"; iot: {{ endpoint = "https://localhost:{AWS.mtls_port}"; '
             f'role_alias = "{alias}"; thing_name = "{thing}"; ca_file = "{PKI["ca"]}"; ')
        c += (f'cert_file = "{PKI["client_cert"]}"; key_file = "{PKI["client_key"]}"; }};' if cert
              else f'cert_file = "{PKI["cert"]}"; key_file = "{PKI["key"]}"; }};')
        return c

    def test_role_alias_with_device_certificate(self):
        g, d = self.start(self.conf())
        self.accepted(d)
        self.signed_with_issued_token()
        call = AWS.cred_calls()[0]
        self.assertEqual(call["path"], "/role-aliases/cmdgate-alias/credentials")
        self.assertEqual(call["headers"]["x-amzn-iot-thingname"], "gw-thing")
        self.assertIn("credentials from iot", g.text())
        self.no_secret_in_log(g)

    def test_wrong_thing_name_is_logged_clearly(self):
        g, d = self.start(self.conf(thing="other-thing"))
        self.unavailable(d)
        self.assertIn("HTTP 403", g.text())
        self.assertIn("thing name", g.text())

    def test_unknown_role_alias(self):
        g, d = self.start(self.conf(alias="nope"))
        self.unavailable(d)
        self.assertIn("HTTP 404 (unknown role alias)", g.text())

    def test_certificate_not_trusted_by_the_provider(self):
        # a real key pair whose certificate another CA signed: the gateway
        # trusts the provider, the provider refuses the gateway's certificate
        cert, key = make_foreign_client_cert(TMP)
        c = (f'source = "iot"; iot: {{ endpoint = "https://localhost:{AWS.mtls_port}"; '
             f'role_alias = "cmdgate-alias"; thing_name = "gw-thing"; ca_file = "{PKI["ca"]}"; '
             f'cert_file = "{cert}"; key_file = "{key}"; }};')
        g, d = self.start(c)
        self.unavailable(d)
        # the handshake was tried and refused for the certificate ...
        self.assertTrue(wait_for(lambda: AWS.tls_failures(), 5))
        self.assertTrue(any("certificate" in f["error"].lower() for f in AWS.tls_failures()),
                        AWS.tls_failures())
        # ... the gateway says so (with TLS 1.3 the provider's alert can
        # arrive after the client's side of the handshake has finished, so
        # libcurl reports it as the alert or as the connection it closed) ...
        self.assertTrue(wait_for(lambda: re.search(
            r"credentials unavailable: GET https://localhost:\d+/role-aliases/cmdgate-alias/"
            r"credentials: .*(alert unknown ca|getpeername|[Cc]onnection reset|"
            r"Recv failure|SSL_read|SSL)", g.text()), 5), g.text()[-2000:])
        # ... and no request reached the provider
        self.assertEqual(AWS.cred_calls(), [])


class Chain(CredCase):
    def test_env_first(self):
        g, d = self.start('source = "chain";', env={
            "AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{AWS.url}/creds/container"})
        self.accepted(d)
        self.assertIn("credentials from env", g.text())
        self.assertEqual(AWS.cred_calls(), [])

    def test_falls_through_to_container(self):
        g, d = self.start('source = "chain";', env={
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{AWS.url}/creds/container",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_TOKEN})
        self.accepted(d)
        self.assertIn("credentials from container", g.text())

    def test_falls_through_to_imds(self):
        g, d = self.start('source = "chain";', env={
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": AWS.url, "AWS_EC2_METADATA_DISABLED": "false"})
        self.accepted(d)
        self.assertIn("credentials from imds", g.text())

    def test_nothing_anywhere(self):
        g, d = self.start('source = "chain";', env={
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials"})
        r = self.unavailable(d)
        self.assertIn("chain", g.text())


class ZzNoSecretInAnyLog(unittest.TestCase):
    """Runs after the others: no secret or token the endpoint issued during
    the whole module appears in the log of any gateway it started."""

    def test_no_issued_secret_in_any_gateway_log(self):
        started = __import__("harness").STARTED
        self.assertGreater(len(started), 10)
        self.assertGreater(len(AWS.secrets()), 10)  # the providers did issue some
        for g in started:
            assert_no_secret(self, g)


class ZzEveryGatewayRun(__import__("harness").EveryGatewayRun):
    """Runs last: no gateway of this module crashed or had a sanitizer report."""


if __name__ == "__main__":
    harness.main()
