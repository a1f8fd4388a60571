"""The whole product on localhost against an embedded moto server, built from template.yaml."""
