#!/usr/bin/env python3
"""A DELIBERATELY INSECURE example device for sacbench.

It speaks Azure IoT Hub's MQTT device surface (telemetry + C2D commands) like
a real device, but has two flaws planted on purpose so the bench's
conformance cases can be shown to blame a bad device:

  1. It does NOT verify the hub's certificate (ssl.CERT_NONE, no host name
     check). It still presents its own client certificate, so the hub sees
     a perfectly normal mutual-TLS session.
  2. It opens an inbound "debug console" on 0.0.0.0:2323 (plain TCP, no
     authentication) that prints `debug> ` and echoes lines.

Never use this as a template for a real device.

Usage: python3 device.py <provisioning-dir> <state-dir>
"""

import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time
from urllib.parse import parse_qsl

import paho.mqtt.client as mqtt

DEBUG_CONSOLE_ADDR = ("0.0.0.0", 2323)  # flaw 2: listens on every interface
TELEMETRY_INTERVAL_S = 5.0
KEEPALIVE_S = 30
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
CONNACK_TIMEOUT_S = 15.0

stop = threading.Event()


def log(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------
# Flaw 2: an unauthenticated inbound debug console.
# --------------------------------------------------------------------------

def _console_session(conn, peer):
    try:
        with conn:
            conn.sendall(b"debug> ")
            buf = b""
            while True:
                data = conn.recv(1024)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    conn.sendall(line.rstrip(b"\r") + b"\n" + b"debug> ")
    except OSError:
        pass


def _console_accept_loop(srv):
    while not stop.is_set():
        try:
            conn, peer = srv.accept()
        except OSError:
            return
        threading.Thread(target=_console_session, args=(conn, peer), daemon=True).start()


def start_debug_console():
    try:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(DEBUG_CONSOLE_ADDR)
        srv.listen(8)
    except OSError as e:
        log(f"debug console unavailable: {e}")
        return None
    threading.Thread(target=_console_accept_loop, args=(srv,), daemon=True).start()
    log(f"debug console listening on {DEBUG_CONSOLE_ADDR[0]}:{DEBUG_CONSOLE_ADDR[1]}")
    return srv


# --------------------------------------------------------------------------
# Flaw 1: a TLS context that trusts any hub.
# --------------------------------------------------------------------------

def insecure_tls_context(cert_path, key_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False          # flaw: any host name accepted
    ctx.verify_mode = ssl.CERT_NONE     # flaw: any certificate accepted
    # (hub-ca.pem from the provisioning directory is deliberately not loaded)
    ctx.load_cert_chain(certfile=cert_path, keyfile=key_path)  # still mutual TLS
    return ctx


# --------------------------------------------------------------------------
# Applied-command store: ids of applied C2D messages, one per line, fsynced.
# --------------------------------------------------------------------------

class AppliedStore:
    def __init__(self, state_dir):
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "applied.txt")
        self.ids = set()
        if os.path.exists(self.path):
            with open(self.path, "r", encoding="utf-8") as f:
                self.ids = {line.strip() for line in f if line.strip()}
        else:
            # Create it and make the directory entry durable too.
            with open(self.path, "a", encoding="utf-8") as f:
                f.flush()
                os.fsync(f.fileno())
            dfd = os.open(state_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def __contains__(self, mid):
        return mid in self.ids

    def add(self, mid):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(mid + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.ids.add(mid)


# --------------------------------------------------------------------------
# The device.
# --------------------------------------------------------------------------

class Device:
    def __init__(self, prov_dir, state_dir):
        with open(os.path.join(prov_dir, "device.json"), "r", encoding="utf-8") as f:
            cfg = json.load(f)
        self.device_id = cfg["device_id"]
        self.hub_host = cfg["hub_host"]
        self.mqtt_port = int(cfg.get("mqtt_port", 8883))
        self.api_version = cfg.get("api_version", "2021-04-12")
        self.cert = os.path.join(prov_dir, "device.pem")
        self.key = os.path.join(prov_dir, "device.key")
        self.applied = AppliedStore(state_dir)
        self.c2d_prefix = f"devices/{self.device_id}/messages/devicebound/"
        self.seq = 0
        # Per-attempt state.
        self.connected = False
        self.attempt_failed = False
        self.fail_reason = None

    # ---- callbacks ---------------------------------------------------------

    def on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.fail_reason = f"CONNACK refused: {reason_code}"
            client.disconnect()
            return
        self.connected = True
        log("connected")
        client.subscribe(f"devices/{self.device_id}/messages/devicebound/#", qos=1)

    def on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self.fail_reason is None:
            self.fail_reason = f"disconnected: {reason_code}"
        self.connected = False

    def on_message(self, client, userdata, msg):
        topic = msg.topic
        if not topic.startswith(self.c2d_prefix):
            log(f"ignored message on {topic}")
            return
        props = dict(parse_qsl(topic[len(self.c2d_prefix):], keep_blank_values=True))
        mid = props.get("$.mid")
        payload = msg.payload.decode("utf-8", errors="replace")
        if not mid:
            log(f"ignored command without $.mid: {payload!r}")
            return
        if mid in self.applied:
            log(f"duplicate command mid={mid} not applied again")
            return
        # "Apply" the command (this example only logs it), record its id
        # durably, and only then return so that paho sends the PUBACK.
        log(f"received command mid={mid} payload={payload!r}")
        self.applied.add(mid)
        log(f"command applied mid={mid}")

    # ---- one connection attempt ---------------------------------------------

    def failed(self, reason):
        if not self.attempt_failed:
            self.attempt_failed = True
            log(f"connection failed: {reason}")

    def run_once(self):
        """One attempt. Returns True if CONNACK 0 was received."""
        self.connected = False
        self.attempt_failed = False
        self.fail_reason = None
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            reconnect_on_failure=False,
        )
        client.username_pw_set(
            f"{self.hub_host}/{self.device_id}/?api-version={self.api_version}", None
        )
        client.tls_set_context(insecure_tls_context(self.cert, self.key))
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_message = self.on_message

        try:
            # TCP connect + TLS handshake happen here (host name resolved normally).
            client.connect(self.hub_host, self.mqtt_port, keepalive=KEEPALIVE_S)
        except (OSError, ssl.SSLError, ValueError) as e:
            self.failed(f"{type(e).__name__}: {e}")
            return False

        ever_connected = False
        started = time.monotonic()
        next_telemetry = time.monotonic()
        try:
            while not stop.is_set():
                rc = client.loop(timeout=0.5)
                if self.connected:
                    ever_connected = True
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    if self.fail_reason is None:
                        self.fail_reason = f"network loop: {mqtt.error_string(rc)}"
                    break
                if self.fail_reason is not None:
                    break
                now = time.monotonic()
                if not ever_connected and now - started > CONNACK_TIMEOUT_S:
                    self.fail_reason = "no CONNACK within %.0f s" % CONNACK_TIMEOUT_S
                    break
                if self.connected and now >= next_telemetry:
                    self.publish_telemetry(client)
                    next_telemetry = now + TELEMETRY_INTERVAL_S
        except (OSError, ssl.SSLError) as e:
            self.fail_reason = f"{type(e).__name__}: {e}"
        finally:
            if stop.is_set() and self.connected:
                try:
                    client.disconnect()
                    client.loop(timeout=0.5)
                except Exception:
                    pass
            try:
                client.socket() and client.socket().close()
            except Exception:
                pass
        if not stop.is_set():
            self.failed(self.fail_reason or "connection lost")
        return ever_connected

    def publish_telemetry(self, client):
        self.seq += 1
        body = json.dumps({"seq": self.seq, "temperature": round(20 + random.random() * 5, 2)})
        client.publish(f"devices/{self.device_id}/messages/events/", body, qos=1)

    # ---- forever -------------------------------------------------------------

    def run(self):
        failures = 0
        while not stop.is_set():
            if self.run_once():
                failures = 0
            else:
                failures += 1
            if stop.is_set():
                break
            # Exponential backoff with equal jitter (half the ceiling fixed,
            # half random), capped at 30 s: its reconnects are not among its
            # flaws (a full-jitter policy would sometimes shorten an interval,
            # which the bench's backoff judgement does not yet accept).
            ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** min(failures, 10)))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
            log(f"retrying in {delay:.1f} s")
            stop.wait(delay)


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} <provisioning-dir> <state-dir>", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    start_debug_console()  # before the MQTT connection
    Device(argv[1], argv[2]).run()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
