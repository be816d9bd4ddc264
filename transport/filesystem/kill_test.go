package filesystem

const roleEnv = "KOMBU_FS_ROLE"

func runConsumerProcess() int { return 2 }
