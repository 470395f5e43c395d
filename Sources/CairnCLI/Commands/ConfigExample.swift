/// The example printed by `cairn config example` (kept in sync with README's configuration section).
enum ConfigExample {
    static let text = """
        # cairn.yaml — found via --config, else $CAIRN_CONFIG, else ./cairn.yaml
        cluster:
          # libpq connection (keywords or a postgresql:// URI). Passwords belong in ~/.pgpass, not here.
          connection: "host=/var/run/postgresql port=5432 user=postgres dbname=postgres"
          data_directory: /var/lib/postgresql/15/main
          # PostgreSQL's programs (pg_dump, pg_restore, pg_ctl, pg_verifybackup…) of the cluster's major. Optional:
          # without it cairn looks in /usr/lib/postgresql/<major>/bin, /usr/pgsql-<major>/bin, then pg_config --bindir.
          bin_directory: /usr/lib/postgresql/15/bin
          # How full backups read the cluster: files (cairn reads the data directory between pg_backup_start and
          # pg_backup_stop, limits.parallelism files at a time; needs this host and the postgres OS user), stream
          # (PostgreSQL sends it over a replication connection; works remotely), auto (files when possible).
          backup_method: auto

        repository:
          type: local                 # local (default) or s3
          path: /var/lib/cairn/repo
          # type: s3
          # bucket: my-backups
          # prefix: prod/db1
          # endpoint: https://s3.eu-west-1.amazonaws.com   # AWS_ENDPOINT_URL overrides
          # region: eu-west-1                              # AWS_REGION overrides
          # uri_style: host                                # host (AWS default) or path (MinIO, Ceph, emulators)
          # ca_file: /etc/ssl/certs/my-ca.pem
          # storage_class: STANDARD_IA
          # server_side_encryption: aws:kms                # or AES256
          # kms_key_id: arn:aws:kms:...
          # object_lock:                                   # S3 Object Lock: the bucket needs it (and versioning) on
          #   mode: governance                             # or compliance (no one can lift it, not even root)
          #   margin: 7d                                   # lock = recovery window + margin from each write (>= 1d)
          # credentials_file: /etc/cairn/aws-credentials    # AWS format, mode 0600; AWS_ACCESS_KEY_ID/... override
          # profile: default
          # encryption:                                    # client-side AES-256-GCM; set before `cairn init`
          #   key_file: /etc/cairn/master.key              # from `cairn key generate`; or key_env: CAIRN_MASTER_KEY

        compression:
          level: 3                    # zstd 1..19
          threads: 0                  # zstd worker threads per stream

        archive:
          async: false                # true: a backlog of .ready files is pushed in parallel by a background worker

        limits:
          parallelism: 4              # parallel part uploads, restores, WAL prefetch
          part_size: 8MiB             # multipart part size (5MiB..5GiB)
          connect_timeout: 10s
          io_timeout: 30s             # a transfer without progress this long is retried
          request_timeout: 5m         # one repository request, retries included
          retries: 6

        # retention: policies/retention.yaml   # recovery window, pins, ages (relative to this file)
        # drills: policies/drills.yaml         # drill targets and SQL assertions
        # schedule: policies/schedule.yaml     # jobs for `cairn daemon` / `cairn schedule print-crontab`
        # metrics:
        #   listen: 127.0.0.1:9187             # /metrics and /healthz of `cairn daemon`
        """
}
