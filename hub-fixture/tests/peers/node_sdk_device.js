'use strict';
// A device on Microsoft's Azure IoT device SDK for Node.js, used as the SDK ships: its own
// default retry policy reconnects it, with CleanSession=0, and it never subscribes again by
// itself — it relies on the hub keeping its MQTT session, as IoT Hub does.
// One JSON object per line on stdout for each thing the device sees.
// Usage: node node_sdk_device.js <sdk-dir> <host> <port> <device-id> <cert> <key> <ca>
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const [sdkDir, host, port, deviceId, certFile, keyFile, caFile] = process.argv.slice(2);
const sdk = createRequire(path.join(path.resolve(sdkDir), 'package.json'));
const { Client, X509AuthenticationProvider } = sdk('azure-iot-device');
const { Mqtt } = sdk('azure-iot-device-mqtt');
const out = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const client = Client.fromAuthenticationProvider(new X509AuthenticationProvider({
  host,
  deviceId,
  gatewayHostName: `${host}:${port}`, // the SDK has no port option
  x509: { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') },
}), Mqtt);
client.on('connect', () => out({ ev: 'connect' }));
client.on('disconnect', (r) => out({ ev: 'disconnect', reason: String(r && (r.reason || r.transportObj)) }));
client.on('error', (e) => out({ ev: 'error', message: e.message }));

async function main() {
  await client.setOptions({ ca: fs.readFileSync(caFile, 'utf8') });
  await client.open();
  client.on('message', (msg) => {
    out({ ev: 'c2d', body: msg.getData().toString(), mid: msg.messageId });
    client.complete(msg, () => {});
  });
  client.onDeviceMethod('ping', (req, res) => {
    out({ ev: 'method', name: req.methodName });
    res.send(200, { pong: true }, () => {});
  });
  const twin = await client.getTwin();
  twin.on('properties.desired', (d) => out({ ev: 'desired', version: d.$version }));
  out({ ev: 'ready' });
}
main().catch((e) => { out({ ev: 'fatal', message: e.message }); process.exit(1); });
process.on('SIGTERM', () => process.exit(0));
