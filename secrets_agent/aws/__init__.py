"""Everything that talks to AWS: the botocore session and clients, one error table, one paging
loop, the SSM and Secrets Manager sources, and the Encryption SDK. Nothing outside this package
imports botocore, and the pure core (names, references, settings, plan) never imports this one."""
