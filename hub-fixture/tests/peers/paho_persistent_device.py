"""A device on Eclipse paho-mqtt with CleanSession=0 that subscribes once, on its first
connection, and never again: paho reconnects on its own and the hub must have kept the
session. One JSON object per line on stdout for each thing the device sees.

Usage: python3 paho_persistent_device.py <host> <port> <device-id> <cert> <key> <ca>
"""

import json
import sys

import paho.mqtt.client as mqtt

host, port, device_id, cert, key, ca = sys.argv[1:7]
subscribed = False


def out(**event):
    print(json.dumps(event), flush=True)


def on_connect(client, _userdata, flags, reason_code, _properties):
    global subscribed
    out(ev="connect", rc=str(reason_code), session_present=bool(flags.session_present))
    if not subscribed and not reason_code.is_failure:
        subscribed = True
        client.subscribe(
            [
                (f"devices/{device_id}/messages/devicebound/#", 1),
                ("$iothub/methods/POST/#", 0),
                ("$iothub/twin/PATCH/properties/desired/#", 0),
            ]
        )


def on_subscribe(_client, _userdata, _mid, _reason_codes, _properties):
    out(ev="ready")


def on_disconnect(_client, _userdata, _flags, reason_code, _properties):
    out(ev="disconnect", rc=str(reason_code))


def on_message(client, _userdata, msg):
    if msg.topic.startswith("$iothub/methods/POST/"):
        name, rid = msg.topic.split("/")[3], msg.topic.split("$rid=")[1]
        out(ev="method", name=name)
        client.publish(f"$iothub/methods/res/200/?$rid={rid}", b'{"pong":true}')
    elif msg.topic.startswith("$iothub/twin/PATCH/properties/desired/"):
        out(ev="desired", version=json.loads(msg.payload)["$version"])
    else:
        out(ev="c2d", body=msg.payload.decode(), dup=bool(msg.dup))


client = mqtt.Client(
    mqtt.CallbackAPIVersion.VERSION2,
    client_id=device_id,
    clean_session=False,
    protocol=mqtt.MQTTv311,
)
client.username_pw_set(f"{host}/{device_id}/?api-version=2021-04-12")
client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
client.reconnect_delay_set(min_delay=1, max_delay=2)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_disconnect = on_disconnect
client.on_message = on_message
client.connect(host, int(port), keepalive=30)
client.loop_forever(retry_first_connection=True)
