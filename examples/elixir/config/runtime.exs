import Config

# Evaluated where the code runs (at each start of a release, and by mix
# before tests): Application.app_dir/2 is this application's directory
# there, so the example's own Python module is found in a moved release.
config :pyport,
  python_path: [Application.app_dir(:pyport_example, "priv/python")]
