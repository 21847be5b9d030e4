"""Running artifacts on the aarch64 builds of their runtimes, emulated with qemu-user.

``environment`` says what the emulated arm64 environment is and where it is cached, ``setup`` builds it
(``python -m lsnet_deploy.arm.setup``), ``worker`` is the program that runs inside the emulator (and the
wire format both ends speak), ``client`` starts and talks to it. The runners that use it are registered
in ``lsnet_deploy.runtimes.arm_runners`` (``ort-arm64``, ``litert-arm64``, ``litert-arm64-fp16``,
``executorch-arm64``).
"""
