"""Past one Pi: receivers, decode workers and engines sharing one MQTT 5 broker.

A receiver-mode gateway publishes every frame its modules hear (``wire.raw_payload``) to
``<base>/raw/<protocol>/<gateway>/<module>``; decode workers take them from one MQTT 5 shared
subscription, decode with their own keys and publish ``wire.DecodedSample`` to
``<base>/samples/<meter>``; the one gateway that runs a meter's engine takes that topic on a
persistent session and counts each telegram once (``merge.Merger``), however many receivers
heard it. README "Many receivers, many meters" draws it. Pure code: no asyncio, no protocol.
"""
