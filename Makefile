# Named tasks. `make` lists them; each is a thin wrapper over a script or cargo,
# so CI and people run the same commands.
.DEFAULT_GOAL := help
.PHONY: help check test e2e bench audit doc msrv fuzz dev

help: ## List the tasks.
	@grep -E '^[a-z0-9]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

check: ## Format check and clippy (warnings are errors), no tests.
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	./scripts/msrv.sh

test: ## The whole suite as CI runs it (README's test command).
	./scripts/test.sh

e2e: ## The portal's browser test (headless Chromium) and the assertion verifiers.
	cargo test -p tenantgate-gateway --test it --locked -- portal_e2e assertions

bench: ## Gateway and worker load benchmarks (minutes; not part of `test`).
	./bench/gateway/run.sh
	./bench/worker/run.sh

audit: ## Supply chain: bans, licenses and sources (deny.toml); advisories when reachable.
	./scripts/audit.sh

doc: ## API docs of the workspace, warnings as errors.
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

msrv: ## Dependencies and code fit rust-version, and it builds and passes unit tests on it.
	./scripts/msrv.sh --build

fuzz: ## Bounded fuzzing of the request parsers (FUZZ_SECONDS per target, 30 by default).
	./scripts/fuzz.sh

dev: ## A local gateway in single-node mode (PostgreSQL only) and the demo app.
	./scripts/dev.sh
