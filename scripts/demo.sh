#!/usr/bin/env bash
# Create a demo instance on the embedded default and feed it one of each message.
set -euo pipefail
UMS=${UMS:-ums}
PY=${PY:-python3}
DEMO=${UMS_DEMO_HOME:-demo-home}

rm -rf "$DEMO"
ums() { "$UMS" --home "$DEMO" "$@"; }

ums init
ums config set default_recipient office@example.test
ums config set site.country DE
ums config set site.area_code 89
ums config set timezone Europe/Berlin
added=$(ums users add alice@example.test --name "Alice Müller" --fax "+49 89 123456" \
    --voice "089 123457" --lang de)
echo "$added"
password=$(echo "$added" | sed -n 's/^password: //p')
ums users add bob@example.test --name "Bob Smith" --sms "+49 170 1234567" --lang en
ums users add office@example.test --name "Office (default recipient)" --lang de

"$PY" -m ums_core.samples all "$DEMO/samples"

echo
echo "== feeding one fax, one voice message, one SMS and one SMS to an unknown number"
fax=$(ums receive fax "$DEMO/samples/fax.tif" --from "+49 30 555010" \
    --to 089123456 --name "Example GmbH" --station-id "+49 30 555010")
voice=$(ums receive voice "$DEMO/samples/voice.wav" --from anonymous --to 089123457)
sms=$(ums receive sms --from "+49 30 555011" --to "0170 1234567" --text "Grüße aus Berlin 😀")
lost=$(ums receive sms --from "+49 30 555012" --to "+49 89 999999" --text "Wer bin ich?")
echo "fax $fax, voice $voice, sms $sms, sms to unknown number $lost"

echo
echo "== where each went (ums --home $DEMO messages list)"
ums messages list
echo
echo "== plugins (ums --home $DEMO plugins list)"
ums plugins list
echo
echo "The local store is in $DEMO/plugins/local_store/; try:"
echo "  $UMS --home $DEMO messages show $fax"
echo "  $UMS --home $DEMO journal serve      # then open http://$(ums config show --json \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["journal.listen"])')/"
echo "  and log in as alice@example.test with the password $password"
