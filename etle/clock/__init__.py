"""When footage was recorded: the clock a camera burns into its picture (:mod:`etle.clock.osd`)."""
