"""A TAK client built on pytak that listens for the hotline's chat lines.

Connects with pytak's own TLS client (`pytak.protocol_factory`, configured by
the PYTAK_TLS_* settings exactly as a pytak user would), prints CONNECTED,
then prints one line per GeoChat event (CoT type `b-t-f`) it receives:
`CHAT uid=<event uid> text=<remarks>`, flushed at once, until DURATION_S
have passed. The Rust test reads the lines as they come.

Environment: COT_URL (tls://127.0.0.1:PORT), PYTAK_TLS_CLIENT_CERT,
PYTAK_TLS_CLIENT_KEY, PYTAK_TLS_CLIENT_CAFILE, DURATION_S.
"""

import asyncio
import configparser
import os
import sys
import xml.etree.ElementTree as ET

import pytak


async def main() -> int:
    parser = configparser.ConfigParser()
    parser["tak"] = {
        key: os.environ[key]
        for key in (
            "COT_URL",
            "PYTAK_TLS_CLIENT_CERT",
            "PYTAK_TLS_CLIENT_KEY",
            "PYTAK_TLS_CLIENT_CAFILE",
        )
        if key in os.environ
    }
    reader, writer = await pytak.protocol_factory(parser["tak"])
    print("CONNECTED", flush=True)

    async def listen():
        while True:
            raw = await reader.readuntil(b"</event>")
            text = raw.decode("utf-8").strip()
            event = ET.fromstring(text[text.find("<event"):])
            if event.get("type") == "b-t-f":
                remarks = event.find("detail/remarks")
                body = remarks.text if remarks is not None else ""
                print(f"CHAT uid={event.get('uid')} text={body}", flush=True)

    try:
        await asyncio.wait_for(listen(), float(os.environ.get("DURATION_S", "20")))
    except asyncio.TimeoutError:
        pass
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
