'use strict';
// sacbench example device under test on the Azure IoT device SDK for Node.js (MQTT, X.509).
// Usage: node app.js <provisioning-dir> <state-dir>
const fs = require('fs');
const path = require('path');
const { Client, Message, X509AuthenticationProvider } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const APP = 'azure-node-device';
const SDK = require('azure-iot-device/package.json').version;
const [provDir, stateDir] = process.argv.slice(2);
if (!provDir || !stateDir) { console.error('usage: node app.js <provisioning-dir> <state-dir>'); process.exit(2); }
const log = (line) => console.log(line.replace(/[\r\n]+/g, ' ')); // one event per line
const cfg = JSON.parse(fs.readFileSync(path.join(provDir, 'device.json'), 'utf8'));
const port = cfg.mqtt_port || 8883;

// C2D ids already applied; written and fsynced before complete() (mqtt.js has sent the PUBACK already).
fs.mkdirSync(stateDir, { recursive: true });
const appliedFile = path.join(stateDir, 'applied.json');
const applied = new Set(fs.existsSync(appliedFile) ? JSON.parse(fs.readFileSync(appliedFile, 'utf8')) : []);
function saveApplied() {
  const tmp = appliedFile + '.tmp';
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, JSON.stringify([...applied].slice(-10000)));
  fs.fsyncSync(fd); fs.closeSync(fd);
  fs.renameSync(tmp, appliedFile);
  const dfd = fs.openSync(stateDir, 'r'); fs.fsyncSync(dfd); fs.closeSync(dfd);
}

// Retry policy for the SDK's own retries: exponential backoff with jitter, capped at 30 s. Socket
// errors (some reach the SDK untranslated, e.g. "write EPIPE") are retried too; CONNACK refusals are not.
const RETRYABLE = ['NotConnectedError', 'TimeoutError', 'ServiceUnavailableError', 'InternalServerError', 'ThrottlingError'];
const isConnErr = (err) => !!err.code || /NotConnected|Unauthorized/.test(err.name) || /connect/i.test(err.message);
const backoff = (n) => Math.min(30000, 1000 * 2 ** Math.min(n, 5)) * (0.5 + Math.random() / 2);
let client = null, connected = false, attempt = 0, interval = 10, seq = 0, sending = false;
let lastErr = null, dropped = null;
function report(err) { // one line per failure; the SDK hands one failure to several listeners
  if (err === lastErr) return;
  lastErr = err;
  const conn = isConnErr(err);
  if (conn && connected) { connected = false; dropped = err.message; return log(`disconnected: ${err.name}: ${err.message}`); }
  if (conn && err.message === dropped) return; // the same drop, reported again untranslated
  log(`${conn ? 'connection failed' : 'retrying'}: ${err.name}: ${err.message}`);
}
const makePolicy = () => ({ retired: false,
  shouldRetry(err) { report(err); return !this.retired && (RETRYABLE.includes(err.name) || !!err.code); },
  nextRetryTimeout: (n) => backoff(n) });
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>
  setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms).unref())]);

function start() {
  const creds = { host: cfg.hub_host, deviceId: cfg.device_id, x509: {
    cert: fs.readFileSync(path.join(provDir, 'device.pem'), 'utf8'),
    key: fs.readFileSync(path.join(provDir, 'device.key'), 'utf8') } };
  if (port !== 8883) creds.gatewayHostName = `${cfg.hub_host}:${port}`; // the SDK has no port option
  const c = client = Client.fromAuthenticationProvider(new X509AuthenticationProvider(creds), Mqtt);
  const policy = makePolicy(); c.setRetryPolicy(policy); c.policy = policy;
  let ready = false;
  c.on('connect', () => {
    if (c !== client) return c.close(() => {}); // a retired client's pending retry got through
    connected = true; dropped = null; attempt = 0; log('connected');
    // After its own reconnect the SDK re-subscribes C2D and methods but does not re-read the twin
    // (desired changes made while offline would be missed): re-read it, or start over.
    if (ready) withTimeout(c.getTwin(), 20000, 'twin get').catch((err) => { log(`twin resync failed: ${err.message}`); restart(c); });
  });
  c.on('error', (err) => c === client && report(err));
  c.on('disconnect', (res) => { // the SDK gave up: start over with a fresh client
    if (c !== client) return;
    log(`SDK gave up: ${res && res.reason ? res.reason.message : 'closed'}`);
    restart(c);
  });
  const state = () => ({ app: APP, sdk: `azure-iot-device/${SDK}`, applied: applied.size });
  c.setOptions({ ca: path.join(provDir, 'hub-ca.pem') }) // chain and host name are verified against it
    .then(() => c.open())
    .then(() => { // features are enabled only now: each enables a subscription and would connect early
      c.on('message', (msg) => {
        const mid = msg.messageId, body = msg.getData().toString();
        if (mid && applied.has(mid)) log(`command duplicate mid=${mid}`);
        else {
          if (mid) { applied.add(mid); saveApplied(); }
          log(`command applied mid=${mid} body=${body}`);
        }
        c.complete(msg, (err) => err && log(`complete failed mid=${mid}: ${err.message}`)); // no-op on MQTT
      });
      // The SDK cuts a method name at the first '/': "diag/state" reaches the handler named "diag".
      for (const name of ['diag/state', 'diag']) c.onDeviceMethod(name, (req, res) => res.send(200, state(), () => {}));
      c.onDeviceMethod('reboot', (req, res) => res.send(200, { rebooting: true }, () => { // flush, then exit
        log('reboot'); setTimeout(() => process.exit(0), 3000); c.close(() => process.exit(0));
      }));
      return withTimeout(c.getTwin(), 20000, 'twin get');
    })
    .then((twin) => {
      ready = true;
      twin.on('properties.desired', (d) => {
        log(`desired version=${d.$version} ${JSON.stringify(d)}`);
        if (Number(d.telemetryIntervalSeconds) > 0) interval = Number(d.telemetryIntervalSeconds);
      });
      twin.properties.reported.update({ app: { name: APP, started: new Date().toISOString() } },
        (err) => log(err ? `report failed: ${err.message}` : 'reported app'));
    })
    .catch((err) => {
      if (c !== client) return;
      if (isConnErr(err)) report(err); else log(`start failed: ${err.message}`);
      restart(c);
    });
}
function restart(c) {
  if (c !== client) return;
  client = null; connected = false; c.policy.retired = true;
  c.close(() => {});
  const delay = backoff(attempt++);
  log(`reopening in ${Math.round(delay)} ms`);
  setTimeout(start, delay);
}
function telemetry() {
  if (client && connected && !sending) {
    sending = true;
    const m = new Message(JSON.stringify({ seq: seq++, uptime: Math.round(process.uptime()) }));
    m.contentType = 'application/json'; m.contentEncoding = 'utf-8';
    client.sendEvent(m, (err) => { sending = false; log(err ? `telemetry failed: ${err.message}` : `telemetry seq=${seq - 1}`); });
  }
  setTimeout(telemetry, interval * 1000);
}
process.on('SIGTERM', () => process.exit(0));
start();
setTimeout(telemetry, interval * 1000);
