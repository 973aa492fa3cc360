{
  "targets": [
    {
      "target_name": "weave_tap",
      "sources": ["tap.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"]
    }
  ]
}
