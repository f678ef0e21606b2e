#!/bin/bash
# CONFIGURE of app, type-prefixed "db_": runs once per db VNFC with that VNFC's values as $db_<key>.
. "$(dirname "$0")/chain-lib.sh"
need_host hostname app
need_ipv4 private
need port 8080
need_ipv4 db_private
need_host db_hostname db
need db_port 5432
need db_schema orders
need_file "$STATE/app.installed" "INSTANTIATE (install.sh) did not run before CONFIGURE"
printf 'db=%s %s:%s/%s\n' "$db_hostname" "$db_private" "$db_port" "$db_schema" > "$STATE/db.conf"
say "database is $db_hostname at $db_private:$db_port, schema $db_schema"
