// Hardhat Network as fedchain's second dev chain (tests/e2e/test_hardhat.py, fedchain.devchain.start_hardhat):
// the same chain id and dev mnemonic as anvil, every transaction mined at once and a block every
// second besides (deadlines are chain time), no telemetry, nothing downloaded (no compile step).
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      mining: { auto: true, interval: 1000 },
      accounts: { mnemonic: "test test test test test test test test test test test junk", count: 20 },
    },
  },
};
