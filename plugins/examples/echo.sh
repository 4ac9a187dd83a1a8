#!/bin/sh
# Echo: `/echo text` says text back. A plugin in plain POSIX shell and sed,
# to show the protocol is language-neutral (PLUGINS.md).
#
#     lantalk server --plugin "sh plugins/examples/echo.sh"
#
# It reads the server's lines as this server writes them (compact JSON, one
# object a line); a real plugin should use a JSON parser. Strings are kept
# exactly as they arrived, escapes included, so they are valid JSON again.

field() { # field NAME LINE: the raw JSON string value of "NAME"
    printf '%s\n' "$2" | sed -E -n 's/.*"'"$1"'":"(([^"\\]|\\.)*)".*/\1/p'
}

while IFS= read -r line; do
    case "$line" in
    *'"type":"hello"'*)
        printf '%s\n' '{"type":"register","commands":[{"name":"echo","args":"<text>","help":"say it back"}]}'
        ;;
    *'"type":"command"'*)
        id=$(printf '%s\n' "$line" | sed -E -n 's/.*"id":([0-9]+).*/\1/p')
        args=$(field args "$line")
        user=$(field user "$line")
        printf '{"type":"reply","id":%s,"text":"%s said: %s"}\n' "$id" "$user" "${args:-(nothing)}"
        ;;
    *'"type":"error"'*)
        printf 'echo: the server says: %s\n' "$(field message "$line")" >&2
        ;;
    esac
done
