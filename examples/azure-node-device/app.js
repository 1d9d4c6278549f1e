'use strict';
// sacbench example device under test on the Azure IoT device SDK for Node.js (MQTT, X.509).
// Usage: node app.js <provisioning-dir> <state-dir>
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');
const { Client, Message, X509AuthenticationProvider } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const sdkRequire = createRequire(require.resolve('azure-iot-device-mqtt')); // the transport's own copies
const { MqttBase, translateError } = sdkRequire('azure-iot-mqtt-base');
const mqttjs = createRequire(sdkRequire.resolve('azure-iot-mqtt-base'))('mqtt');

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

// Connections. The app alone decides when to connect, with one backoff schedule (exponential with
// jitter, capped at 30 s). Each attempt uses a fresh client, because after a reconnect the SDK does
// not restore the twin subscriptions. Two SDK behaviours would otherwise open extra connections:
// its per-feature retry loops each reconnect on their own schedule, and any operation on a
// disconnected transport (including ones queued before a close) reconnects it. So the SDK never
// retries, a client's transport may open one socket in its whole life, and the next client starts
// only once the previous socket is closed.
const NO_RETRY = { shouldRetry: () => false, nextRetryTimeout: () => -1 };
const backoff = (n) => Math.min(30000, 1000 * 2 ** n) * (0.5 + Math.random() / 2);
const STABLE_MS = 30000; // a session that lasted this long resets the backoff
const describe = (err) => (err ? `${err.name}: ${err.message}` : 'connection closed');
const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, rej) =>
  setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms).unref())]);
let client = null, attempt = 0, interval = 10, seq = 0, sending = false;

function oneSocketTransport(conn) { // conn keeps the socket and the first raw connect error
  return class extends Mqtt {
    constructor(auth) {
      const base = new MqttBase({ connect: (uri, opts) => (conn.socket = mqttjs.connect(uri, opts)) });
      const connect = base.connect.bind(base);
      base.connect = (config, done) => {
        if (conn.used) return process.nextTick(done, Object.assign(new Error('client already used'), { name: 'NotConnectedError' }));
        conn.used = true;
        // CleanSession=1: each client subscribes anew once open, so it keeps no session. With
        // CleanSession=0 (the SDK's default) the hub resumes the session and delivers queued
        // commands right after CONNACK, before this app's 'message' listener exists: lost.
        connect(Object.assign(config, { clean: true }), (err, res) => { conn.err = conn.err || err; done(err, res); });
      };
      super(auth, base);
    }
  };
}

function start() {
  const creds = { host: cfg.hub_host, deviceId: cfg.device_id, x509: {
    cert: fs.readFileSync(path.join(provDir, 'device.pem'), 'utf8'),
    key: fs.readFileSync(path.join(provDir, 'device.key'), 'utf8') } };
  if (port !== 8883) creds.gatewayHostName = `${cfg.hub_host}:${port}`; // the SDK has no port option
  const conn = {};
  const c = client = Client.fromAuthenticationProvider(new X509AuthenticationProvider(creds), oneSocketTransport(conn));
  c.conn = conn;
  c.setRetryPolicy(NO_RETRY);
  c.on('error', (err) => drop(c, err));
  c.on('disconnect', (res) => drop(c, res && (res.reason || res.transportObj))); // the SDK passes the error as transportObj
  const state = () => ({ app: APP, sdk: `azure-iot-device/${SDK}`, applied: applied.size });
  c.setOptions({ ca: path.join(provDir, 'hub-ca.pem') }) // chain and host name are verified against it
    .then(() => c.open())
    .then(() => { // features only now: enabling one on a disconnected client would connect it
      c.connectedAt = Date.now(); log('connected');
      c.on('message', (msg) => { // handled even if c has been retired since: mqtt.js has acked it
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
      twin.on('error', (err) => drop(c, err));
      twin.on('properties.desired', (d) => {
        log(`desired version=${d.$version} ${JSON.stringify(d)}`);
        if (Number(d.telemetryIntervalSeconds) > 0) { // applied, and acknowledged in the reported properties
          interval = Number(d.telemetryIntervalSeconds);
          twin.properties.reported.update({ telemetryIntervalSeconds: interval },
            (err) => log(err ? `report failed: ${err.message}` : `reported telemetryIntervalSeconds=${interval}`));
        }
      });
      c.ready = true;
      twin.properties.reported.update({ app: { name: APP, started: new Date().toISOString() } },
        (err) => log(err ? `report failed: ${err.message}` : 'reported app'));
    })
    .catch((err) => (c.connectedAt ? drop(c, err) : failed(c, err)));
}
function failed(c, err) { // the attempt did not connect
  if (c !== client) return;
  log(`connection failed: ${describe(c.conn.err ? translateError(c.conn.err) : err)}`);
  retire(c);
}
function drop(c, err) { // a connected session ended or could not be set up
  if (c !== client) return;
  log(`disconnected: ${describe(err)}`);
  if (Date.now() - c.connectedAt >= STABLE_MS) attempt = 0;
  retire(c);
}
function retire(c) { // close c's socket (forced after 2 s), wait out the backoff, then start over
  client = null; sending = false;
  const delay = backoff(attempt++);
  log(`reconnecting in ${Math.round(delay)} ms`);
  const closed = new Promise((resolve) => {
    const force = setTimeout(() => {
      const s = c.conn.socket;
      if (s) { s.end(true); if (s.stream) s.stream.destroy(); }
      resolve();
    }, 2000);
    c.close(() => { clearTimeout(force); resolve(); });
  });
  Promise.all([closed, new Promise((r) => setTimeout(r, delay))]).then(start);
}
function telemetry() {
  if (client && client.ready && !sending) {
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
