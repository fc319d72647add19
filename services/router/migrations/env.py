from jiesu.migrate import run_env

run_env()
